import { create, fromJsonString, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService, AccountStatus } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import {
  WebhookDeliveryStatus,
  WebhookEndpointSchema,
  WebhookEventSchema,
} from "../../src/gen/roomkey/v1/webhooks_pb.js";
import { type ApiKeyProvider, startApiKeyProvider } from "../helpers/api-key-provider.js";
import { grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { apiKeyIntegration, oauthIntegration } from "../helpers/integrations.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OAuthProvider, startOAuthProvider } from "../helpers/oauth-provider.js";
import { type Deployment, eventually, startDeployment, testConfig } from "../helpers/server.js";
import {
  type ReceivedDelivery,
  signersOf,
  startWebhookReceiver,
  type WebhookReceiver,
} from "../helpers/webhook-receiver.js";

/**
 * Issue 13: signed webhooks per environment on the Standard Webhooks spec,
 * delivered from each environment's own webhook queue, against a local HTTP
 * receiver, on real Redis and FerretDB.
 */
const e = EnvironmentService.method;
const a = AccountService.method;
const t = TokenService.method;
const redirectUri = "https://app.example/oauth/callback";

let d: Deployment;
let receiver: WebhookReceiver;
let keys: ApiKeyProvider;
let oauth: OAuthProvider;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  keys = await startApiKeyProvider();
  oauth = await startOAuthProvider();
  d = await startDeployment(
    testConfig({
      ROOMKEY_PROVIDER_RETRY_MS: "50",
      ROOMKEY_HANDSHAKE_SWEEP_MS: "1000",
      ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
      ROOMKEY_WEBHOOK_TIMEOUT_MS: "3000",
      ROOMKEY_WEBHOOK_ATTEMPTS: "8",
      ROOMKEY_WEBHOOK_RETRY_BASE_MS: "100",
      ROOMKEY_WEBHOOK_RETRY_MAX_MS: "400",
      ROOMKEY_WEBHOOK_DISABLE_AFTER_MS: "1500",
      ROOMKEY_WEBHOOK_SWEEP_MS: "1000",
    }),
  );
});

afterAll(async () => {
  await d?.stop();
  await receiver?.stop();
  await keys?.stop();
  await oauth?.stop();
});

async function newEnvironment(): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(e.createEnvironment, {}, d.admin(name));
  await d.environments.unary(e.putIntegration, { integration: apiKeyIntegration("keyed", keys.url) }, d.admin(name));
  await d.environments.unary(
    e.putIntegration,
    { integration: oauthIntegration("crm", oauth.issuer, "client-secret-1") },
    d.admin(name),
  );
  return name;
}

async function endpoint(environment: string, path: string, eventTypes: string[] = []) {
  const created = await d.environments.unary(
    e.createWebhookEndpoint,
    { endpoint: { url: receiver.url(path), eventTypes, enabled: true, description: path } },
    d.admin(environment),
  );
  return { id: created.endpoint?.id ?? "", secret: created.signingSecret };
}

async function accountStatus(environment: string, id: string) {
  return (await d.accounts.unary(a.getAccount, { id }, d.admin(environment))).account?.status;
}

async function settled(environment: string, id: string) {
  await eventually(
    async () => (await accountStatus(environment, id)) !== AccountStatus.CONNECTING,
    10_000,
    `account ${id} leaves CONNECTING`,
  );
}

async function connectKey(environment: string, key: string) {
  const { account } = await d.accounts.unary(
    a.connectAccount,
    { integration: "keyed", tenantId: "tenant-1", credential: { case: "apiKey", value: { key } } },
    d.admin(environment),
  );
  await settled(environment, account?.id ?? "");
  return account?.id ?? "";
}

async function connectOAuth(environment: string, accountId?: string) {
  const started = await d.accounts.unary(
    a.startOAuthConnection,
    { integration: "crm", tenantId: "tenant-1", redirectUri, ...(accountId ? { accountId } : {}) },
    d.admin(environment),
  );
  const { code, state } = await oauth.authorize(started.authorizationUrl);
  const { account } = await d.accounts.unary(a.completeOAuthConnection, { state, code }, d.admin(environment));
  await settled(environment, account?.id ?? "");
  return account?.id ?? "";
}

function typesOf(deliveries: readonly ReceivedDelivery[]): string[] {
  return deliveries.map((r) => (JSON.parse(r.body) as { type: string }).type);
}

describe("webhooks", () => {
  it("when every kind of change happens, then each event type is delivered once per event, signed, and decodes as WebhookEvent", async () => {
    const env = await newEnvironment();
    const all = await endpoint(env, `all-${env}`);
    keys.allow("sk_webhook_good", { id: "remote-1", name: "Acme" });

    const active = await connectKey(env, "sk_webhook_good");
    await connectKey(env, "sk_webhook_bad");
    await d.accounts.unary(a.deleteAccount, { id: active }, d.admin(env));

    const oauthAccount = await connectOAuth(env);
    oauth.revokeAll();
    await grpcFailure(d.accounts.unary(a.refreshAccountCredentials, { id: oauthAccount }, d.admin(env)));
    expect(await accountStatus(env, oauthAccount)).toBe(AccountStatus.NEEDS_REAUTH);
    await connectOAuth(env, oauthAccount);
    expect(await accountStatus(env, oauthAccount)).toBe(AccountStatus.ACTIVE);

    const created = await d.tokens.unary(
      t.createToken,
      { name: "ci", scopes: ["accounts:read"], ttl: durationFromMs(3_600_000) },
      d.admin(env),
    );
    const expiring = await d.tokens.unary(
      t.createToken,
      { name: "short-lived", scopes: ["accounts:read"], ttl: durationFromMs(3_600_000) },
      d.admin(env),
    );
    const rotated = await d.tokens.unary(t.rotateToken, { id: created.token?.id ?? "" }, d.admin(env));
    await d.tokens.unary(t.revokeToken, { id: rotated.token?.id ?? "" }, d.admin(env));

    // One endpoint that fails every time is disabled, and the first is told.
    const failing = await endpoint(env, `failing-${env}`, ["token.created"]);
    receiver.answer(`failing-${env}`, 500);
    await d.tokens.unary(t.createToken, { name: "trigger", scopes: ["accounts:read"] }, d.admin(env));

    const expected = [
      "account.created",
      "account.active",
      "account.failed",
      "account.deleted",
      "account.needs_reauth",
      "account.recovered",
      "token.created",
      "token.rotated",
      "token.revoked",
      "token.expiring",
      "webhook.endpoint_disabled",
    ];
    const missing = () => expected.filter((type) => !typesOf(receiver.received(`all-${env}`)).includes(type));
    await eventually(() => missing().length === 0, 20_000, "every event type at the endpoint").catch((error) => {
      throw new Error(`${error}; missing: ${missing().join(", ")}`);
    });
    const deliveries = receiver.received(`all-${env}`);
    const secrets = [all.secret, failing.secret];
    for (const delivery of deliveries) {
      // Signed with the endpoint's own secret only, over id.timestamp.body; the id is the body's.
      expect(signersOf(delivery, secrets)).toEqual([0]);
      const event = fromJsonString(WebhookEventSchema, delivery.body);
      expect(delivery.headers["webhook-id"]).toBe(event.id);
      expect(event.environment).toBe(env);
      expect(Math.abs(Number(delivery.headers["webhook-timestamp"]) * 1000 - delivery.at)).toBeLessThan(60_000);
      expect(delivery.headers["content-type"]).toBe("application/json");
      // No secret of any kind travels in an event.
      expect(delivery.body).not.toMatch(/whsec_|sk_webhook|rk_[a-z0-9-]+_[0-9A-Za-z]{20}|access_token|client-secret/);
    }
    const events = deliveries.map((r) => fromJsonString(WebhookEventSchema, r.body));
    const byType = (type: string) => events.filter((ev) => ev.type === type);
    // Deduplicated by id: each event delivered once to a healthy endpoint.
    expect(new Set(events.map((ev) => ev.id)).size).toBe(events.length);
    expect(byType("account.recovered")[0]?.data?.account?.id).toBe(oauthAccount);
    expect(byType("account.needs_reauth")[0]?.data?.reason).toContain("invalid_grant");
    expect(byType("account.failed")[0]?.data?.previousStatus).toBe(AccountStatus.CONNECTING);
    expect(byType("token.rotated")[0]?.data?.previousToken?.id).toBe(created.token?.id);
    // Sent once per token, however many sweeps (every second here) see it within the window.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const expiringIds = receiver.events(`all-${env}`).flatMap((ev) => (ev.type === "token.expiring" ? [ev.id] : []));
    expect(new Set(expiringIds).size).toBe(expiringIds.length);
    expect(byType("token.expiring").filter((ev) => ev.data?.token?.id === expiring.token?.id)).toHaveLength(1);
    const disabled = byType("webhook.endpoint_disabled")[0];
    expect(disabled?.data?.endpoint?.id).toBe(failing.id);
    expect(disabled?.data?.reason).toContain("HTTP 500");

    const { endpoint: after } = await d.environments.unary(e.getWebhookEndpoint, { id: failing.id }, d.admin(env));
    expect(after?.enabled).toBe(false);
    expect(after?.disabledReason).toContain("every delivery failed");
    // The disabled endpoint itself is not told; its log says why its deliveries ended.
    expect(typesOf(receiver.received(`failing-${env}`))).not.toContain("webhook.endpoint_disabled");
    const log = await d.environments.unary(e.listWebhookDeliveries, { endpointId: failing.id }, d.admin(env));
    expect(log.deliveries.every((x) => x.status === WebhookDeliveryStatus.FAILED)).toBe(true);
    expect(log.deliveries[0]?.lastResponseCode).toBe(500);
  });

  it("when an endpoint answers 500 then 200, then one success is logged and every attempt carried the same webhook-id", async () => {
    const env = await newEnvironment();
    const path = `flaky-${env}`;
    receiver.answer(path, 500, 200);
    const hook = await endpoint(env, path, ["token.created"]);
    await d.tokens.unary(t.createToken, { name: "one", scopes: ["accounts:read"] }, d.admin(env));
    await eventually(() => receiver.received(path).some((r) => r.answered === 200), 10_000, "the second attempt");
    const attempts = receiver.received(path);
    expect(attempts.map((r) => r.answered)).toEqual([500, 200]);
    expect(new Set(attempts.map((r) => r.headers["webhook-id"])).size).toBe(1);
    // Each attempt is signed afresh, at its own time, and verifies.
    for (const attempt of attempts) expect(signersOf(attempt, [hook.secret])).toEqual([0]);
    // The endpoint answers before roomkey writes the attempt down.
    const logOf = () => d.environments.unary(e.listWebhookDeliveries, { endpointId: hook.id }, d.admin(env));
    await eventually(
      async () => (await logOf()).deliveries[0]?.status === WebhookDeliveryStatus.SUCCEEDED,
      5_000,
      "the success in the log",
    );
    const log = await logOf();
    expect(log.deliveries).toHaveLength(1);
    expect(log.deliveries[0]).toMatchObject({
      status: WebhookDeliveryStatus.SUCCEEDED,
      attempts: 2,
      lastResponseCode: 200,
      lastError: "",
      eventId: String(attempts[0]?.headers["webhook-id"]),
      eventType: "token.created",
    });
    const { endpoint: after } = await d.environments.unary(e.getWebhookEndpoint, { id: hook.id }, d.admin(env));
    expect(after?.failingSince).toBeUndefined();
    expect(after?.enabled).toBe(true);
    // Operators see both attempts in the metrics.
    const metrics = await (await fetch(`http://127.0.0.1:${d.server.app.metricsPort}/metrics`)).text();
    for (const outcome of ["succeeded", "failed"]) {
      expect(metrics).toContain(`roomkey_webhook_attempts_total{environment="${env}",outcome="${outcome}"} 1`);
    }
  });

  it("when a secret is rotated, then deliveries carry both signatures during the overlap and only the new one after it", async () => {
    const env = await newEnvironment();
    const path = `rotating-${env}`;
    const hook = await endpoint(env, path, ["token.created"]);
    const rotated = await d.environments.unary(
      e.rotateWebhookEndpointSecret,
      { id: hook.id, overlap: durationFromMs(3_000) },
      d.admin(env),
    );
    expect(rotated.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(rotated.signingSecret).not.toBe(hook.secret);
    await d.tokens.unary(t.createToken, { name: "during", scopes: ["accounts:read"] }, d.admin(env));
    await eventually(() => receiver.received(path).length === 1, 10_000, "a delivery during the overlap");
    const during = receiver.received(path)[0] as ReceivedDelivery;
    expect(String(during.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    expect(signersOf(during, [rotated.signingSecret, hook.secret])).toEqual([0, 1]);

    const overlapEnds = Date.now() + 3_200;
    await new Promise((resolve) => setTimeout(resolve, overlapEnds - Date.now()));
    await d.tokens.unary(t.createToken, { name: "after", scopes: ["accounts:read"] }, d.admin(env));
    await eventually(() => receiver.received(path).length === 2, 10_000, "a delivery after the overlap");
    const after = receiver.received(path)[1] as ReceivedDelivery;
    expect(String(after.headers["webhook-signature"]).split(" ")).toHaveLength(1);
    expect(signersOf(after, [rotated.signingSecret, hook.secret])).toEqual([0]);
  });

  it("when staging and production both have endpoints, then each receives only its own environment's events", async () => {
    const [staging, production] = [await newEnvironment(), await newEnvironment()];
    await endpoint(staging, `iso-${staging}`);
    await endpoint(production, `iso-${production}`);
    for (let i = 0; i < 3; i++) {
      await d.tokens.unary(t.createToken, { name: `p${i}`, scopes: ["accounts:read"] }, d.admin(production));
    }
    await d.tokens.unary(t.createToken, { name: "s", scopes: ["accounts:read"] }, d.admin(staging));
    await eventually(
      () => receiver.received(`iso-${production}`).length === 3 && receiver.received(`iso-${staging}`).length === 1,
      10_000,
      "both environments' deliveries",
    );
    // A little longer: nothing of production's may arrive late at staging.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(receiver.events(`iso-${staging}`).map((ev) => ev.environment)).toEqual([staging]);
    expect(new Set(receiver.events(`iso-${production}`).map((ev) => ev.environment))).toEqual(new Set([production]));
    // Nor can staging read production's endpoints or log.
    const { endpoints } = await d.environments.unary(e.listWebhookEndpoints, {}, d.admin(staging));
    expect(endpoints.map((x) => x.url)).toEqual([receiver.url(`iso-${staging}`)]);
  });

  it("when one environment's endpoint hangs, then another environment's deliveries are not delayed", async () => {
    const [slow, quick] = [await newEnvironment(), await newEnvironment()];
    receiver.answer(`hang-${slow}`, "hang");
    await endpoint(slow, `hang-${slow}`, ["token.created"]);
    await endpoint(quick, `quick-${quick}`, ["token.created"]);
    // More hanging deliveries than the slow environment's worker runs at once (20).
    for (let i = 0; i < 30; i++) {
      await d.tokens.unary(t.createToken, { name: `s${i}`, scopes: ["accounts:read"] }, d.admin(slow));
    }
    await eventually(() => receiver.received(`hang-${slow}`).length >= 20, 10_000, "the slow worker is saturated");
    const sent = Date.now();
    await d.tokens.unary(t.createToken, { name: "q", scopes: ["accounts:read"] }, d.admin(quick));
    await eventually(() => receiver.received(`quick-${quick}`).length === 1, 10_000, "the quick delivery");
    const latency = (receiver.received(`quick-${quick}`)[0]?.at ?? 0) - sent;
    console.log(`while 20 deliveries of another environment hung, a delivery arrived ${latency} ms after its event`);
    // The slow environment's deliveries are still hanging (3 s timeout) when the quick one is in.
    expect(latency).toBeLessThan(2_500);
  });

  it("when deliveries are listed and an event is redelivered, then the log shows each attempt and the redelivery keeps the webhook-id", async () => {
    const env = await newEnvironment();
    const path = `log-${env}`;
    const hook = await endpoint(env, path, ["token.created"]);
    await d.tokens.unary(t.createToken, { name: "logged", scopes: ["accounts:read"] }, d.admin(env));
    await eventually(() => receiver.received(path).length === 1, 10_000, "the first delivery");
    const eventId = String(receiver.received(path)[0]?.headers["webhook-id"]);
    const byEventOf = () => d.environments.unary(e.listWebhookDeliveries, { eventId }, d.admin(env));
    await eventually(async () => (await byEventOf()).deliveries[0]?.attempts === 1, 5_000, "the attempt in the log");
    const byEvent = await byEventOf();
    expect(byEvent.deliveries.map((x) => x.endpointId)).toEqual([hook.id]);
    expect(byEvent.deliveries[0]?.lastLatencyMs).toBeGreaterThanOrEqual(0);
    expect(byEvent.deliveries[0]?.lastAttemptTime).toBeDefined();

    const again = await d.environments.unary(e.redeliverWebhookEvent, { eventId }, d.admin(env));
    expect(again.deliveries.map((x) => x.status)).toEqual([WebhookDeliveryStatus.PENDING]);
    await eventually(() => receiver.received(path).length === 2, 10_000, "the redelivery");
    expect(receiver.received(path)[1]?.headers["webhook-id"]).toBe(eventId);
    await eventually(
      async () =>
        (await d.environments.unary(e.listWebhookDeliveries, { eventId }, d.admin(env))).deliveries[0]?.attempts === 2,
      5_000,
      "the redelivery in the log",
    );

    // While a delivery is pending (its endpoint still holds the request), it is not sent a second time.
    const holding = `holding-${env}`;
    receiver.answer(holding, "hang", 204);
    const held = await endpoint(env, holding, ["token.revoked"]);
    const revoked = await d.tokens.unary(t.createToken, { name: "to-revoke", scopes: ["accounts:read"] }, d.admin(env));
    await d.tokens.unary(t.revokeToken, { id: revoked.token?.id ?? "" }, d.admin(env));
    await eventually(() => receiver.received(holding).length === 1, 10_000, "the held delivery");
    const heldEvent = String(receiver.received(holding)[0]?.headers["webhook-id"]);
    const pending = await grpcFailure(
      d.environments.unary(e.redeliverWebhookEvent, { eventId: heldEvent, endpointId: held.id }, d.admin(env)),
    );
    expect(pending.code).toBe(status.FAILED_PRECONDITION);
    expect(grpcDetails(pending).errorInfo?.reason).toBe("WEBHOOK_DELIVERY_PENDING");
    const toAll = await d.environments.unary(e.redeliverWebhookEvent, { eventId: heldEvent }, d.admin(env));
    expect(toAll.deliveries).toEqual([]);

    const unknown = await grpcFailure(
      d.environments.unary(e.redeliverWebhookEvent, { eventId: "evt_0000000000000000000000" }, d.admin(env)),
    );
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect(grpcDetails(unknown).errorInfo?.reason).toBe("WEBHOOK_EVENT_NOT_FOUND");
    const neither = await grpcFailure(d.environments.unary(e.listWebhookDeliveries, {}, d.admin(env)));
    expect(neither.code).toBe(status.INVALID_ARGUMENT);
  });

  it("when endpoints are managed, then scopes, field masks, validation and deletion behave", async () => {
    const env = await newEnvironment();
    // Loopback is refused unless allowlisted; this deployment allowlists it (ROOMKEY_OUTBOUND_ALLOW), IPv6 too.
    const v6 = await d.environments.unary(
      e.createWebhookEndpoint,
      { endpoint: { url: "http://[::1]:9/hook" } },
      d.admin(env),
    );
    expect(v6.endpoint?.enabled).toBe(true);
    await d.environments.unary(e.deleteWebhookEndpoint, { id: v6.endpoint?.id ?? "" }, d.admin(env));
    const hook = await endpoint(env, `crud-${env}`, ["account.active"]);
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const { endpoint: got } = await d.environments.unary(e.getWebhookEndpoint, { id: hook.id }, d.admin(env));
    expect(got).toMatchObject({ url: receiver.url(`crud-${env}`), eventTypes: ["account.active"], enabled: true });
    // The secret is never returned again, nor stored in the clear.
    expect(JSON.stringify(toJson(WebhookEndpointSchema, create(WebhookEndpointSchema, got)))).not.toContain("whsec_");
    const stored = await d.mongo
      .db(`${d.server.config.ROOMKEY_DB_PREFIX}_env_${env}`)
      .collection("webhook_endpoints")
      .findOne({ _id: hook.id as never });
    expect(JSON.stringify(stored)).not.toContain(hook.secret.slice(6, 30));

    const { endpoint: updated } = await d.environments.unary(
      e.updateWebhookEndpoint,
      { endpoint: { id: hook.id, description: "renamed", enabled: false }, updateMask: { paths: ["description"] } },
      d.admin(env),
    );
    expect(updated).toMatchObject({ description: "renamed", enabled: true, eventTypes: ["account.active"] });

    const badType = await grpcFailure(
      d.environments.unary(
        e.createWebhookEndpoint,
        { endpoint: { url: receiver.url("x"), eventTypes: ["account.exploded"] } },
        d.admin(env),
      ),
    );
    expect(badType.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(badType).badRequest?.fieldViolations[0]?.field).toBe("endpoint.event_types");
    const badMask = await grpcFailure(
      d.environments.unary(
        e.updateWebhookEndpoint,
        { endpoint: { id: hook.id }, updateMask: { paths: ["signing_secret"] } },
        d.admin(env),
      ),
    );
    expect(badMask.code).toBe(status.INVALID_ARGUMENT);

    // environment:read reads; writing needs environment:write.
    const reader = await d.tokens.unary(t.createToken, { name: "reader", scopes: ["environment:read"] }, d.admin(env));
    const asReader = metadataFor(env, reader.secret);
    const listed = await d.environments.unary(e.listWebhookEndpoints, {}, asReader);
    expect(listed.endpoints.map((x) => x.id)).toEqual([hook.id]);
    const refused = await grpcFailure(
      d.environments.unary(e.createWebhookEndpoint, { endpoint: { url: receiver.url("y") } }, asReader),
    );
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect(refused.details).toContain("environment:write");

    await d.environments.unary(e.deleteWebhookEndpoint, { id: hook.id }, d.admin(env));
    const gone = await grpcFailure(d.environments.unary(e.getWebhookEndpoint, { id: hook.id }, d.admin(env)));
    expect(gone.code).toBe(status.NOT_FOUND);
    expect(grpcDetails(gone).errorInfo?.reason).toBe("WEBHOOK_ENDPOINT_NOT_FOUND");
  });
});
