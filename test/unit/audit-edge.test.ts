import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { connectPageBackend } from "../../src/app/connect-page-backend.js";
import type { AccountView } from "../../src/domain/accounts/accounts.js";
import type { AuditFacts } from "../../src/domain/audit/audit-recorder.js";
import type { ConnectSession } from "../../src/domain/connect-sessions/connect-sessions.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { describeCall, describedMethods, ensureRequestId, isAudited, outcomeName } from "../../src/rpc/audit-calls.js";
import { createAuthenticator } from "../../src/rpc/authentication.js";
import type { CallContext, Principal } from "../../src/rpc/call-context.js";
import { createEdge } from "../../src/rpc/edge.js";
import { createFailureThrottle } from "../../src/rpc/failure-throttle.js";
import { unimplementedService } from "../../src/rpc/handlers/unimplemented.js";
import { deferred, environmentRecord, fakeClock, rejectionOf, settle } from "../helpers/fakes.js";

const services = [EnvironmentService, TokenService, AccountService];
const adminKey = "admin-key-of-at-least-thirty-two-characters";
const reader: Principal = {
  kind: "token",
  tokenId: "tok_reader",
  scopes: new Set(["tokens:read"]),
  environment: "staging",
};

describe("which calls the audit log records, and what they acted on", () => {
  it("when a method has side effects, then it is recorded and names its resource deliberately; reads are not, except decrypted credentials", () => {
    for (const service of services) {
      for (const method of service.methods) {
        const name = `${service.typeName}/${method.name}`;
        if (isAudited(method)) expect(describedMethods.has(name), name).toBe(true);
      }
    }
    expect(isAudited(TokenService.method.createToken)).toBe(true);
    expect(isAudited(TokenService.method.revokeToken)).toBe(true);
    expect(isAudited(TokenService.method.getToken)).toBe(false);
    expect(isAudited(TokenService.method.verifyToken)).toBe(false);
    expect(isAudited(EnvironmentService.method.listAuditEvents)).toBe(false);
    expect(isAudited(AccountService.method.getAccountCredentials)).toBe(true);
    expect(isAudited(AccountService.method.watchAccounts)).toBe(false);
  });

  it("when a call created something, then its resource is the new id; else the request's id or name", () => {
    const call: CallContext = { environment: "staging", principal: { kind: "admin" } };
    const m = { ...TokenService.method, ...EnvironmentService.method, ...AccountService.method };
    expect(describeCall(m.createToken, { name: "x" }, { token: { id: "tok_new" }, secret: "rk_s" }, call)).toEqual({
      resource: "tok_new",
      details: {},
    });
    expect(describeCall(m.createToken, { name: "x" }, undefined, call).resource).toBe("");
    expect(describeCall(m.revokeToken, { id: "tok_1" }, undefined, call).resource).toBe("tok_1");
    expect(
      describeCall(m.putIntegration, { integration: { name: "crm", oauth2: { clientSecret: "s" } } }, {}, call),
    ).toEqual({
      resource: "crm",
      details: {},
    });
    expect(describeCall(m.createEnvironment, {}, {}, call).resource).toBe("staging");
    expect(describeCall(m.connectAccount, { accountId: "acc_old" }, undefined, call).resource).toBe("acc_old");
    expect(
      describeCall(m.promoteIntegrations, { fromEnvironment: "staging" }, {}, { ...call, environment: "production" }),
    ).toEqual({
      resource: "production",
      details: { from_environment: "staging" },
      // The source's log records the crossing too.
      alsoIn: { environment: "staging", resource: "production", details: { to_environment: "production" } },
    });
    // Not for a source that is the target itself, nor for a name that is not one.
    for (const fromEnvironment of ["production", "Not_A_Name"]) {
      expect(
        describeCall(m.promoteIntegrations, { fromEnvironment }, {}, { ...call, environment: "production" }).alsoIn,
      ).toBeUndefined();
    }
    expect(describeCall(m.revokeToken, { id: "x".repeat(500) }, undefined, call).resource).toHaveLength(128);
  });

  it("when a status code is named, then it is gRPC's canonical name", () => {
    expect(outcomeName(undefined)).toBe("OK");
    expect(outcomeName(Code.PermissionDenied)).toBe("PERMISSION_DENIED");
    expect(outcomeName(Code.NotFound)).toBe("NOT_FOUND");
  });

  it("when a caller sends a request id, then it is kept if printable and at most 128 characters, else replaced", () => {
    const kept = new Headers({ "x-request-id": "req 1/2" });
    expect(ensureRequestId(kept)).toBe("req 1/2");
    for (const bad of ["x".repeat(129), "caf\u00e9", ""]) {
      const headers = new Headers({ "x-request-id": bad });
      const made = ensureRequestId(headers);
      expect(made).not.toBe(bad);
      expect(headers.get("x-request-id")).toBe(made);
    }
    const none = new Headers();
    const made = ensureRequestId(none);
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    expect(ensureRequestId(none)).toBe(made);
  });
});

/** An edge with a throttle of 2 failures at once, two environments (staging, production), and a fake audit log. */
function setup(options: { hold?: Promise<void> } = {}) {
  const recorded: { environment: string; facts: AuditFacts }[] = [];
  const noted: { environment: string; facts: AuditFacts; aggregate?: string }[] = [];
  const throttle = createFailureThrottle({ perMinute: 1, burst: 2, maxPeers: 100, now: () => 0 });
  const exists = new Set(["staging", "production"]);
  const edge = createEdge({
    authenticator: createAuthenticator({
      adminKey,
      tokens: {
        authenticate(secret, environment) {
          if (secret === "rk_staging_reader" && environment === "staging") return reader;
          if (secret.startsWith("rk_staging_") && environment !== "staging") {
            throw new RoomkeyError("permission_denied", "TOKEN_WRONG_ENVIRONMENT", "belongs to staging", {
              token_environment: "staging",
              requested_environment: environment,
            });
          }
          throw new RoomkeyError("unauthenticated", "CREDENTIALS_INVALID", "unknown");
        },
        authenticateFromMemory: () => undefined,
        knownToExist: () => false,
        identify: (secret, environment) =>
          secret === "rk_staging_reader" && environment === "staging" ? "tok_reader" : undefined,
      },
    }),
    throttle,
    environments: { require: (name) => environmentRecord(name) },
    validator: createValidator(),
    logger: pino({ level: "silent" }),
    audit: {
      async record(environment, facts) {
        recorded.push({ environment, facts });
        await options.hold;
      },
      note(environment, facts, aggregate) {
        noted.push({ environment, facts, ...(aggregate === undefined ? {} : { aggregate }) });
      },
      knows: (name) => exists.has(name),
    },
  });
  const admit = (
    method: Parameters<typeof edge.admit>[0],
    secret: string,
    environment = "staging",
    peer = "10.0.0.1",
  ) =>
    Promise.resolve().then(() =>
      edge.admit(
        method,
        new Headers({ "roomkey-environment": environment, authorization: `Bearer ${secret}`, "x-request-id": "req-9" }),
        peer,
      ),
    );
  return { edge, recorded, noted, admit };
}

describe("the edge's audit entries", () => {
  it("when a peer's failures are throttled, then its refusals are noted under one aggregation key; the refusals before under the key of peer, reason, actor and method", async () => {
    const { noted, admit } = setup();
    for (let i = 0; i < 6; i++) await rejectionOf(admit(TokenService.method.getToken, `rk_made_up_${i}`));
    expect(noted.map((n) => n.facts.reason)).toEqual([
      "CREDENTIALS_INVALID",
      "CREDENTIALS_INVALID",
      ...Array(4).fill("TOO_MANY_FAILED_AUTHENTICATIONS"),
    ]);
    expect(new Set(noted.slice(0, 2).map((n) => n.aggregate))).toEqual(
      new Set([["refused", "10.0.0.1", "CREDENTIALS_INVALID", "", "roomkey.v1.TokenService/GetToken"].join("\u0000")]),
    );
    expect(new Set(noted.slice(2).map((n) => n.aggregate))).toEqual(new Set(["throttled\u000010.0.0.1"]));
    expect(noted[0]).toMatchObject({
      environment: "staging",
      facts: {
        actorKind: "unauthenticated",
        method: "roomkey.v1.TokenService/GetToken",
        requestId: "req-9",
        outcome: "UNAUTHENTICATED",
        peer: "10.0.0.1",
      },
    });
  });

  it("when a token of staging is sent to production, then production's log notes it with the token's id and environment", async () => {
    const { noted, admit } = setup();
    const error = await rejectionOf(admit(TokenService.method.listTokens, "rk_staging_reader", "production"));
    expect((error as RoomkeyError).reason).toBe("TOKEN_WRONG_ENVIRONMENT");
    expect(noted).toEqual([
      {
        environment: "production",
        aggregate: expect.any(String),
        facts: expect.objectContaining({
          actorKind: "unauthenticated",
          actorId: "tok_reader",
          reason: "TOKEN_WRONG_ENVIRONMENT",
          outcome: "PERMISSION_DENIED",
          details: { token_environment: "staging" },
        }),
      },
    ]);
  });

  it("when the environment named is unknown or malformed, then nothing is noted", async () => {
    const { noted, admit } = setup();
    await rejectionOf(admit(TokenService.method.listTokens, "rk_bad", "made-up-env"));
    await rejectionOf(admit(TokenService.method.listTokens, "rk_bad", "Bad..Name"));
    expect(noted).toEqual([]);
  });

  it("when a token lacks the scope of a call, mutating or not, then the refusal is noted with the token as actor", async () => {
    const { noted, admit } = setup();
    await rejectionOf(admit(TokenService.method.createToken, "rk_staging_reader"));
    await rejectionOf(admit(EnvironmentService.method.listAuditEvents, "rk_staging_reader"));
    expect(noted).toEqual([
      {
        environment: "staging",
        aggregate: expect.any(String),
        facts: expect.objectContaining({
          actorKind: "token",
          actorId: "tok_reader",
          method: "roomkey.v1.TokenService/CreateToken",
          outcome: "PERMISSION_DENIED",
          reason: "SCOPE_MISSING",
        }),
      },
      {
        environment: "staging",
        aggregate: expect.any(String),
        facts: expect.objectContaining({
          actorKind: "token",
          actorId: "tok_reader",
          method: "roomkey.v1.EnvironmentService/ListAuditEvents",
          reason: "SCOPE_MISSING",
        }),
      },
    ]);
  });

  it("when an admitted mutating call ends, then its entry is recorded before it answers, with the request id sent back; a read records nothing", async () => {
    const hold = deferred<void>();
    const { edge, recorded } = setup({ hold: hold.promise });
    let answered = 0;
    const transport = createRouterTransport((router) => {
      router.service(
        TokenService,
        edge.wrap(TokenService, {
          ...unimplementedService(TokenService),
          async createToken() {
            return { token: { id: "tok_new" }, secret: "rk_staging_secret_value" };
          },
          async revokeToken() {
            throw new RoomkeyError("not_found", "TOKEN_NOT_FOUND", "no such token");
          },
          async getToken() {
            answered++;
            return { token: { id: "tok_1" } };
          },
        }),
      );
    });
    const client = createClient(TokenService, transport);
    const headers = { "roomkey-environment": "staging", authorization: `Bearer ${adminKey}` };
    let echoed: string | null = null;
    let created = false;
    const creating = client.createToken(
      { name: "n", scopes: ["tokens:read"] },
      {
        headers: { ...headers, "x-request-id": "req-create" },
        onHeader: (h) => {
          echoed = h.get("x-request-id");
        },
      },
    );
    creating.then(() => {
      created = true;
    });
    await settle();
    expect(recorded).toHaveLength(1);
    expect(created).toBe(false);
    hold.resolve();
    await creating;
    expect(echoed).toBe("req-create");
    const failed = await client.revokeToken({ id: "tok_0000000000000000000000" }, { headers }).catch((e: unknown) => e);
    expect(ConnectError.from(failed).code).toBe(Code.NotFound);
    expect(ConnectError.from(failed).metadata.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    // A read (the hot path's kind) makes no request id of its own; one its caller sent comes back.
    let readEcho: string | null = "unset";
    await client.getToken(
      { id: "tok_0000000000000000000000" },
      { headers, onHeader: (h) => (readEcho = h.get("x-request-id")) },
    );
    expect(readEcho).toBeNull();
    await client.getToken(
      { id: "tok_0000000000000000000000" },
      { headers: { ...headers, "x-request-id": "req-read" }, onHeader: (h) => (readEcho = h.get("x-request-id")) },
    );
    expect(readEcho).toBe("req-read");
    expect(answered).toBe(2);
    expect(recorded.map((r) => r.facts)).toEqual([
      expect.objectContaining({
        actorKind: "admin",
        method: "roomkey.v1.TokenService/CreateToken",
        resource: "tok_new",
        requestId: "req-create",
        outcome: "OK",
      }),
      expect.objectContaining({
        method: "roomkey.v1.TokenService/RevokeToken",
        resource: "tok_0000000000000000000000",
        outcome: "NOT_FOUND",
        reason: "TOKEN_NOT_FOUND",
        requestId: ConnectError.from(failed).metadata.get("x-request-id"),
      }),
    ]);
    expect(JSON.stringify(recorded)).not.toContain("rk_staging_secret_value");
  });
});

describe("the hosted connect page's audit entries", () => {
  it("when the page completes an OAuth connection, then the environment's log records it with the session as actor and the account as resource", async () => {
    const recorded: { environment: string; facts: AuditFacts }[] = [];
    const backend = connectPageBackend({
      sessions: {
        getOwn: async () => {
          throw new Error("unused");
        },
        completeCallback: async () => ({
          environment: "staging",
          session: {
            id: "cs_0VcEM5ZaIpd7rR7sQAS2EV",
            endUser: { id: "user-1", displayName: "" },
            allowedOrigins: new Set<string>(),
            expireTime: new Date(Date.UTC(2100, 0, 1)),
          } as unknown as ConnectSession,
          account: { id: "acc_0Nm2bqZp8tQy4rW1xKs9Lf" } as AccountView,
        }),
        sessionOfState: async () => undefined,
        offered: async () => [],
      },
      authenticate: () => {
        throw new Error("unused");
      },
      environments: { require: (name) => environmentRecord(name) },
      clock: fakeClock(),
      audit: {
        async record(environment, facts) {
          recorded.push({ environment, facts });
        },
      },
    });
    const completed = await backend.completeCallback({ state: "s", code: "c" });
    expect(completed.accountId).toBe("acc_0Nm2bqZp8tQy4rW1xKs9Lf");
    expect(recorded).toEqual([
      {
        environment: "staging",
        facts: expect.objectContaining({
          actorKind: "connect_session",
          actorId: "cs_0VcEM5ZaIpd7rR7sQAS2EV",
          method: "roomkey.v1.AccountService/CompleteOAuthConnection",
          resource: "acc_0Nm2bqZp8tQy4rW1xKs9Lf",
          outcome: "OK",
          details: { via: "connect_page" },
        }),
      },
    ]);
  });
});
