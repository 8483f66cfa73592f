import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  credentials,
  type GrpcObject,
  type Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditIdFloor } from "../../src/domain/audit/audit.js";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import {
  AuditActorKind,
  type AuditEvent,
  type ListAuditEventsRequestSchema,
} from "../../src/gen/roomkey/v1/audit_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { type CreateTokenRequestSchema, TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { grpcClientDefinition } from "../../src/rpc/grpc/grpc-adapter.js";
import { createAuditRepository } from "../../src/storage/audit-repository.js";
import { databaseNames } from "../../src/storage/mongo.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, databasesOf, eventually, startDeployment, testConfig } from "../helpers/server.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

/**
 * Issue 16, point 3: each environment's audit log, in its own database, over
 * real sockets (grpc-js and Connect), on real Redis and FerretDB.
 */
const e = EnvironmentService.method;
const a = AccountService.method;
const t = TokenService.method;

let d: Deployment;
let keys: ApiKeyProvider;
let receiver: WebhookReceiver;

beforeAll(async () => {
  keys = await startApiKeyProvider();
  receiver = await startWebhookReceiver();
  d = await startDeployment(
    testConfig({
      ROOMKEY_PROVIDER_RETRY_MS: "50",
      ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
      ROOMKEY_WEBHOOK_RETRY_BASE_MS: "100",
      ROOMKEY_WEBHOOK_RETRY_MAX_MS: "300",
      ROOMKEY_WEBHOOK_ATTEMPTS: "20",
      ROOMKEY_WEBHOOK_DISABLE_AFTER_MS: "1000",
    }),
  );
});

afterAll(async () => {
  await d?.stop();
  await keys?.stop();
  await receiver?.stop();
});

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(e.createEnvironment, {}, d.admin(name));
  return name;
}

async function newToken(environment: string, scopes: string[]): Promise<{ id: string; secret: string }> {
  const { token, secret } = await d.tokens.unary(t.createToken, { name: "caller", scopes }, d.admin(environment));
  return { id: token?.id ?? "", secret };
}

type ListRequest = MessageInitShape<typeof ListAuditEventsRequestSchema>;

/** Every event matching `filter`, newest first, read page by page with the admin key. */
async function events(environment: string, filter: ListRequest = {}): Promise<AuditEvent[]> {
  const all: AuditEvent[] = [];
  let pageToken = "";
  do {
    const page = await d.environments.unary(
      e.listAuditEvents,
      { ...filter, pageSize: 500, pageToken },
      d.admin(environment),
    );
    all.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return all;
}

/** A grpc-js TokenService client that reports the response's `x-request-id` metadata. */
function rawTokens() {
  const Ctor = makeGenericClientConstructor(grpcClientDefinition(TokenService), "TokenService");
  const client = new Ctor(d.server.grpcAddress, credentials.createInsecure()) as InstanceType<typeof Ctor> & GrpcObject;
  const createToken = client.createToken as unknown as (
    request: unknown,
    metadata: Metadata,
    callback: (error: ServiceError | null, response: unknown) => void,
  ) => { on(event: "metadata", listener: (metadata: Metadata) => void): void };
  return {
    create(
      request: MessageInitShape<typeof CreateTokenRequestSchema>,
      metadata: Metadata,
    ): Promise<{ requestId: string | undefined; error?: ServiceError; id?: string }> {
      return new Promise((resolve) => {
        let requestId: string | undefined;
        const call = createToken.call(
          client,
          create(t.createToken.input, request),
          metadata,
          (error: ServiceError | null, response: unknown) => {
            if (error) resolve({ requestId, error });
            else resolve({ requestId, id: (response as { token?: { id: string } }).token?.id ?? "" });
          },
        );
        call.on("metadata", (received) => {
          const [value] = received.get("x-request-id");
          requestId = typeof value === "string" ? value : undefined;
        });
      });
    },
    close: () => client.close(),
  };
}

function connectTokens() {
  return createClient(
    TokenService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${d.server.app.httpPort}`, httpVersion: "1.1" }),
  );
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("audit log", () => {
  it("when mutating calls are made over gRPC and Connect, then each is recorded with who, what, when, its request id, outcome and peer; reads are not", async () => {
    const env = await newEnvironment();
    const writer = await newToken(env, ["tokens:write", "tokens:read"]);
    const before = Date.now();

    // gRPC, admin key, the caller's request id.
    const grpc = rawTokens();
    const sent = metadataFor(env, d.server.adminKey);
    sent.set("x-request-id", "req-grpc-1");
    const byAdmin = await grpc.create({ name: "by-admin", scopes: ["accounts:read"] }, sent);
    expect(byAdmin.requestId).toBe("req-grpc-1");

    // gRPC, a request id too long to keep: one is made, and returned.
    const long = metadataFor(env, writer.secret);
    long.set("x-request-id", "x".repeat(129));
    const byToken = await grpc.create({ name: "by-token", scopes: ["tokens:read"] }, long);
    expect(byToken.requestId).toMatch(uuid);

    // A refusal at admission (gRPC answers it before reading the body) sends the request id back too.
    const refusedMetadata = metadataFor(env, "rk_made_up");
    refusedMetadata.set("x-request-id", "req-refused");
    const refusedCall = await grpc.create({ name: "refused", scopes: ["tokens:read"] }, refusedMetadata);
    expect(refusedCall.error?.code).toBe(status.UNAUTHENTICATED);
    expect(refusedCall.requestId).toBe("req-refused");

    // Connect, a token, no request id: one is made and returned.
    const connect = connectTokens();
    let connectRequestId: string | null = null;
    const viaConnect = await connect.createToken(
      { name: "via-connect", scopes: ["tokens:read"] },
      {
        headers: { "roomkey-environment": env, authorization: `Bearer ${writer.secret}` },
        onHeader: (h) => {
          connectRequestId = h.get("x-request-id");
        },
      },
    );
    expect(connectRequestId).toMatch(uuid);

    // A failed mutating call (Connect, with its request id), and a read.
    const failed = await connect
      .revokeToken(
        { id: "tok_0000000000000000000000" },
        {
          headers: {
            "roomkey-environment": env,
            authorization: `Bearer ${writer.secret}`,
            "x-request-id": "req-failed",
          },
        },
      )
      .catch((error: unknown) => ConnectError.from(error));
    expect(failed).toBeInstanceOf(ConnectError);
    expect((failed as ConnectError).code).toBe(Code.NotFound);
    expect((failed as ConnectError).metadata.get("x-request-id")).toBe("req-failed");
    await d.tokens.unary(t.getToken, { id: byAdmin.id ?? "" }, metadataFor(env, writer.secret));
    grpc.close();

    const logged = await events(env);
    const created = logged.filter((ev) => ev.method === "roomkey.v1.TokenService/CreateToken");
    const admin = created.find((ev) => ev.resource === byAdmin.id);
    expect(admin).toMatchObject({
      actorKind: AuditActorKind.ADMIN,
      actorId: "",
      requestId: "req-grpc-1",
      outcome: "OK",
      reason: "",
      peer: "127.0.0.1",
    });
    expect(Number(admin?.time?.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(created.find((ev) => ev.resource === byToken.id)).toMatchObject({
      actorKind: AuditActorKind.TOKEN,
      actorId: writer.id,
      requestId: byToken.requestId,
      outcome: "OK",
      peer: "127.0.0.1",
    });
    expect(created.find((ev) => ev.resource === viaConnect.token?.id)).toMatchObject({
      actorKind: AuditActorKind.TOKEN,
      actorId: writer.id,
      requestId: connectRequestId ?? "missing",
      outcome: "OK",
      peer: "127.0.0.1",
    });
    expect(logged.find((ev) => ev.requestId === "req-failed")).toMatchObject({
      method: "roomkey.v1.TokenService/RevokeToken",
      resource: "tok_0000000000000000000000",
      actorId: writer.id,
      outcome: "NOT_FOUND",
      reason: "TOKEN_NOT_FOUND",
    });
    // The environment's own creation (admin) is there; the read is not.
    expect(
      logged.some((ev) => ev.method === "roomkey.v1.EnvironmentService/CreateEnvironment" && ev.resource === env),
    ).toBe(true);
    expect(logged.some((ev) => ev.method === "roomkey.v1.TokenService/GetToken")).toBe(false);
    expect(logged.some((ev) => ev.method === "roomkey.v1.EnvironmentService/ListAuditEvents")).toBe(false);
    // Newest first.
    const ids = logged.map((ev) => ev.id);
    expect([...ids].sort().reverse()).toEqual(ids);
  });

  it("when a token lacks audit:read, then ListAuditEvents is PERMISSION_DENIED SCOPE_MISSING; with it, the log is listed", async () => {
    const env = await newEnvironment();
    const without = await newToken(env, ["tokens:read", "environment:read"]);
    const refused = await grpcFailure(d.environments.unary(e.listAuditEvents, {}, metadataFor(env, without.secret)));
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect(grpcDetails(refused).errorInfo?.reason).toBe("SCOPE_MISSING");
    expect(refused.details).toContain("audit:read");

    const reader = await newToken(env, ["audit:read"]);
    const listed = await d.environments.unary(e.listAuditEvents, {}, metadataFor(env, reader.secret));
    expect(listed.events.some((ev) => ev.resource === reader.id)).toBe(true);
  });

  it("when the log is filtered and paged, then filters combine with AND, pages are newest first, and a page token continues only its own listing", async () => {
    const env = await newEnvironment();
    const writer = await newToken(env, ["tokens:write"]);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await newToken(env, ["accounts:read"])).id);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const middle = new Date();
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 3; i++) {
      const { token } = await d.tokens.unary(
        t.createToken,
        { name: `w${i}`, scopes: ["tokens:write"] },
        metadataFor(env, writer.secret),
      );
      made.push(token?.id ?? "");
    }
    const method = "roomkey.v1.TokenService/CreateToken";

    // Paging: 3 + 3 + 3 (the writer's own creation too), newest first, no overlap.
    const first = await d.environments.unary(e.listAuditEvents, { method, pageSize: 3 }, d.admin(env));
    expect(first.events.map((ev) => ev.resource)).toEqual([made[7], made[6], made[5]]);
    const second = await d.environments.unary(
      e.listAuditEvents,
      { method, pageSize: 3, pageToken: first.nextPageToken },
      d.admin(env),
    );
    expect(second.events.map((ev) => ev.resource)).toEqual([made[4], made[3], made[2]]);
    const third = await d.environments.unary(
      e.listAuditEvents,
      { method, pageSize: 3, pageToken: second.nextPageToken },
      d.admin(env),
    );
    expect(third.events.map((ev) => ev.resource)).toEqual([made[1], made[0], writer.id]);
    expect(third.nextPageToken).toBe("");

    // A page token of another filter is refused, naming page_token.
    const foreign = await grpcFailure(
      d.environments.unary(
        e.listAuditEvents,
        { method: "roomkey.v1.TokenService/RevokeToken", pageToken: first.nextPageToken },
        d.admin(env),
      ),
    );
    expect(foreign.code).toBe(status.INVALID_ARGUMENT);
    expect(foreign.details).toContain("page_token");

    // Actor, resource, time: each alone and together.
    expect((await events(env, { actorId: writer.id })).map((ev) => ev.resource)).toEqual([made[7], made[6], made[5]]);
    expect((await events(env, { resource: made[3] })).map((ev) => ev.method)).toEqual([method]);
    const since = await events(env, { startTime: timestampFromDate(middle), method });
    expect(since.map((ev) => ev.resource)).toEqual([made[7], made[6], made[5]]);
    const until = await events(env, { endTime: timestampFromDate(middle), actorId: writer.id });
    expect(until).toEqual([]);
    expect(await events(env, { actorId: writer.id, resource: made[0] })).toEqual([]);

    // end_time before start_time names the field.
    const backwards = await grpcFailure(
      d.environments.unary(
        e.listAuditEvents,
        { startTime: timestampFromDate(middle), endTime: timestampFromDate(new Date(middle.getTime() - 1000)) },
        d.admin(env),
      ),
    );
    expect(backwards.code).toBe(status.INVALID_ARGUMENT);
    expect(backwards.details).toContain("end_time");
  });

  it("when a staging token is sent to production, then production's log records the refusal and staging's does not; neither log holds the other's events; an unknown environment gets no database", async () => {
    const production = await newEnvironment();
    const staging = await newEnvironment();
    const stagingToken = await newToken(staging, ["tokens:read"]);
    const productionToken = await newToken(production, ["tokens:read"]);
    // Used once where it belongs: this replica's cache knows its id.
    await d.tokens.unary(t.listTokens, {}, metadataFor(staging, stagingToken.secret));

    const sent = metadataFor(production, stagingToken.secret);
    sent.set("x-request-id", "req-cross");
    const refused = await grpcFailure(d.tokens.unary(t.listTokens, {}, sent));
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect(grpcDetails(refused).errorInfo?.reason).toBe("TOKEN_WRONG_ENVIRONMENT");

    // A made-up environment name, valid in form: refused, recorded nowhere, no database made.
    const unknown = randomEnvironmentName();
    const nowhere = await grpcFailure(
      d.tokens.unary(t.createToken, { name: "x", scopes: ["tokens:read"] }, metadataFor(unknown, stagingToken.secret)),
    );
    expect(nowhere.code).toBe(status.PERMISSION_DENIED);

    let crossing: AuditEvent | undefined;
    await eventually(
      async () => {
        crossing = (await events(production)).find((ev) => ev.requestId === "req-cross");
        return crossing !== undefined;
      },
      5_000,
      "the refusal in production's log",
    );
    expect(crossing).toMatchObject({
      actorKind: AuditActorKind.UNAUTHENTICATED,
      actorId: stagingToken.id,
      method: "roomkey.v1.TokenService/ListTokens",
      outcome: "PERMISSION_DENIED",
      reason: "TOKEN_WRONG_ENVIRONMENT",
      peer: "127.0.0.1",
      details: { token_environment: staging },
    });

    const stagingLog = await events(staging);
    const productionLog = await events(production);
    expect(stagingLog.some((ev) => ev.requestId === "req-cross")).toBe(false);
    expect(stagingLog.some((ev) => ev.reason === "TOKEN_WRONG_ENVIRONMENT")).toBe(false);
    // Each log holds its own environment's creation and tokens, none of the other's.
    expect(stagingLog.some((ev) => ev.resource === production || ev.resource === productionToken.id)).toBe(false);
    expect(productionLog.some((ev) => ev.resource === staging || ev.resource === stagingToken.id)).toBe(false);
    const stagingIds = new Set(stagingLog.map((ev) => ev.id));
    expect(productionLog.filter((ev) => stagingIds.has(ev.id))).toEqual([]);
    // Stored where it says: each environment's own database.
    const names = databaseNames(d.server.config.ROOMKEY_DB_PREFIX);
    const stored = await d.mongo
      .db(names.environment(staging))
      .collection("audit_events")
      .find({ resource: productionToken.id })
      .toArray();
    expect(stored).toEqual([]);

    expect(await databasesOf(d.mongo, d.server.config.ROOMKEY_DB_PREFIX)).not.toContain(names.environment(unknown));
  });

  it("when the worker changes state, then the log records it: an account going ACTIVE, a rotated token retired, a failing endpoint disabled", async () => {
    const env = await newEnvironment();
    await d.environments.unary(e.putIntegration, { integration: apiKeyIntegration("keyed", keys.url) }, d.admin(env));
    keys.allow("sk_audit_good", { id: "remote-1", name: "Acme" });
    const { account } = await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "tenant-1", credential: { case: "apiKey", value: { key: "sk_audit_good" } } },
      d.admin(env),
    );
    const accountId = account?.id ?? "";
    await eventually(
      async () =>
        (await d.accounts.unary(a.getAccount, { id: accountId }, d.admin(env))).account?.status ===
        AccountStatus.ACTIVE,
      10_000,
      "the account ACTIVE",
    );

    const token = await newToken(env, ["tokens:read"]);
    await d.tokens.unary(t.rotateToken, { id: token.id, gracePeriod: durationFromMs(300) }, d.admin(env));

    const failing = await d.environments.unary(
      e.createWebhookEndpoint,
      { endpoint: { url: receiver.url(`failing-${env}`), eventTypes: ["token.created"], enabled: true } },
      d.admin(env),
    );
    receiver.answer(`failing-${env}`, 500);
    await d.tokens.unary(t.createToken, { name: "trigger", scopes: ["accounts:read"] }, d.admin(env));
    const endpointId = failing.endpoint?.id ?? "";

    const worker = async () => (await events(env)).filter((ev) => ev.actorKind === AuditActorKind.WORKER);
    await eventually(
      async () => {
        const methods = (await worker()).map((ev) => ev.method);
        return ["worker/account.status", "worker/token.retire", "worker/webhook_endpoint.disable"].every((m) =>
          methods.includes(m),
        );
      },
      20_000,
      "the worker's three kinds of entries",
    );
    const entries = await worker();
    expect(entries.find((ev) => ev.method === "worker/account.status")).toMatchObject({
      resource: accountId,
      actorId: "",
      requestId: "",
      peer: "",
      outcome: "OK",
      details: { from: "CONNECTING", to: "ACTIVE", handshake_attempt: "1" },
    });
    expect(entries.find((ev) => ev.method === "worker/token.retire")).toMatchObject({ resource: token.id });
    expect(entries.find((ev) => ev.method === "worker/webhook_endpoint.disable")).toMatchObject({
      resource: endpointId,
      details: { from: "ENABLED", to: "DISABLED" },
    });
    // The call that connected the account is the caller's entry, with the new account's id.
    expect((await events(env, { method: "roomkey.v1.AccountService/ConnectAccount" }))[0]).toMatchObject({
      actorKind: AuditActorKind.ADMIN,
      resource: accountId,
    });
  });

  it("when secrets pass through calls, then no stored audit entry holds one", async () => {
    const env = await newEnvironment();
    const clientSecret = `cs-${randomEnvironmentName()}-oauth-client-secret`;
    await d.environments.unary(
      e.putIntegration,
      { integration: oauthIntegration("crm", "https://oauth.example", clientSecret) },
      d.admin(env),
    );
    await d.environments.unary(e.putIntegration, { integration: apiKeyIntegration("keyed", keys.url) }, d.admin(env));
    const apiKey = `sk_audit_secret_${randomEnvironmentName()}`;
    await d.accounts.unary(
      a.connectAccount,
      { integration: "keyed", tenantId: "tenant-1", credential: { case: "apiKey", value: { key: apiKey } } },
      d.admin(env),
    );
    const created = await d.tokens.unary(t.createToken, { name: "secret", scopes: ["tokens:write"] }, d.admin(env));
    const rotated = await d.tokens.unary(t.rotateToken, { id: created.token?.id ?? "" }, d.admin(env));
    const endpoint = await d.environments.unary(
      e.createWebhookEndpoint,
      { endpoint: { url: receiver.url(`quiet-${env}`), enabled: true } },
      d.admin(env),
    );
    const rotatedEndpoint = await d.environments.unary(
      e.rotateWebhookEndpointSecret,
      { id: endpoint.endpoint?.id ?? "" },
      d.admin(env),
    );
    // A refused call carrying a secret-shaped bearer, recorded too.
    await grpcFailure(d.tokens.unary(t.listTokens, {}, metadataFor(env, "not-the-admin-key-but-secret-looking")));
    const secrets = [
      clientSecret,
      apiKey,
      created.secret,
      rotated.secret,
      endpoint.signingSecret,
      rotatedEndpoint.signingSecret,
      d.server.adminKey,
      "not-the-admin-key-but-secret-looking",
    ];
    for (const secret of secrets) expect(secret.length).toBeGreaterThan(10);

    const names = databaseNames(d.server.config.ROOMKEY_DB_PREFIX);
    const collection = d.mongo.db(names.environment(env)).collection("audit_events");
    await eventually(
      async () => (await collection.countDocuments({ reason: "CREDENTIALS_INVALID" })) > 0,
      5_000,
      "the refusal flushed",
    );
    const stored = JSON.stringify(await collection.find({}).toArray());
    expect(stored).toContain("RotateWebhookEndpointSecret");
    expect(stored).toContain("PutIntegration");
    for (const secret of secrets) expect(stored).not.toContain(secret);
  });

  it("when the retention sweep runs, then entries older than the environment's audit_retention are deleted and newer ones kept", async () => {
    const env = await newEnvironment();
    const { environment } = await d.environments.unary(e.getEnvironment, {}, d.admin(env));
    expect(environment?.settings?.auditRetention?.seconds).toBe(90n * 86400n);
    await d.environments.unary(
      e.updateEnvironment,
      {
        environment: { settings: { auditRetention: { seconds: 2n * 86400n } } },
        updateMask: { paths: ["settings.audit_retention"] },
      },
      d.admin(env),
    );
    const names = databaseNames(d.server.config.ROOMKEY_DB_PREFIX);
    const store = createAuditRepository({ db: (name) => d.mongo.db(names.environment(name)) });
    const day = 86_400_000;
    const at = (ms: number) => {
      const time = new Date(Date.now() - ms);
      return {
        id: `${auditIdFloor(time)}${String(ms).padStart(14, "0").slice(-14)}`,
        time,
        actorKind: "admin" as const,
        actorId: "",
        method: "test/old",
        resource: `r-${ms}`,
        requestId: "",
        outcome: "OK",
        reason: "",
        peer: "",
        details: {},
      };
    };
    await store.insertMany(env, [at(5 * day), at(3 * day), at(2 * day + 60_000), at(day), at(60_000)]);

    const result = await d.server.app.runSweep(env, "purge-audit");
    expect(result).toEqual({ deleted: 3 });
    const left = (await events(env, { method: "test/old" })).map((ev) => ev.resource);
    expect(left).toEqual([`r-${60_000}`, `r-${day}`]);
    // The call that changed the setting is kept (it is recent).
    expect((await events(env, { method: "roomkey.v1.EnvironmentService/UpdateEnvironment" })).length).toBe(1);
  });
});
