import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { WebhookDeliveryStatus } from "../../src/gen/roomkey/v1/webhooks_pb.js";
import type { ResolvedAddress } from "../../src/providers/outbound-http.js";
import { killSpawned, spawnRoomkey } from "../helpers/child-process.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import {
  type Deployment,
  dropDeployment,
  eventually,
  redisKeys,
  startDeployment,
  startTestServer,
  testConfig,
} from "../helpers/server.js";
import { signersOf, startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

/**
 * Issue 13: webhooks under faults and abuse. The outbound guard at creation
 * and again at delivery, a worker SIGKILLed mid-delivery, a Redis that loses
 * the webhook queue's jobs, and the purge of old log entries.
 */
const e = EnvironmentService.method;
const t = TokenService.method;

let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
});

afterAll(async () => {
  await killSpawned();
  await receiver.stop();
});

async function createEnvironment(d: Pick<Deployment, "environments" | "admin">): Promise<string> {
  const name = randomEnvironmentName();
  await d.environments.unary(e.createEnvironment, {}, d.admin(name));
  return name;
}

describe("the outbound guard, with no allowlist", () => {
  // DNS as the test says: a public name that a rebinding later points at a private address.
  const dns = new Map<string, ResolvedAddress[]>([["hooks.example.test", [{ address: "93.184.216.34", family: 4 }]]]);
  let d: Deployment;

  beforeAll(async () => {
    d = await startDeployment(
      testConfig({ ROOMKEY_OUTBOUND_ALLOW: "", ROOMKEY_WEBHOOK_RETRY_BASE_MS: "60000" }),
      "all",
      {
        seams: { resolveHost: async (host) => dns.get(host) ?? [] },
      },
    );
  });

  afterAll(async () => {
    await d.stop();
  });

  it("when an endpoint URL reaches loopback, a private network, link-local or the metadata service, then INVALID_ARGUMENT names endpoint.url and why", async () => {
    const env = await createEnvironment(d);
    const cases: [url: string, why: string][] = [
      ["https://127.0.0.1/hook", "loopback"],
      ["https://10.1.2.3/hook", "private"],
      ["https://169.254.169.254/latest/meta-data/", "cloud metadata"],
      ["https://[::1]:8443/hook", "loopback"],
      ["https://169.254.10.10/hook", "link-local"],
      ["https://localhost/hook", "loopback"],
    ];
    for (const [url, why] of cases) {
      const error = await grpcFailure(
        d.environments.unary(e.createWebhookEndpoint, { endpoint: { url, enabled: true } }, d.admin(env)),
      );
      expect(error.code, url).toBe(status.INVALID_ARGUMENT);
      const violation = grpcDetails(error).badRequest?.fieldViolations[0];
      expect(violation?.field, url).toBe("endpoint.url");
      expect(violation?.description, url).toContain(why);
    }
    // Plain http is refused unless the deployment allows it (this one does not).
    const http = await grpcFailure(
      d.environments.unary(
        e.createWebhookEndpoint,
        { endpoint: { url: "http://hooks.example.test/x", enabled: true } },
        d.admin(env),
      ),
    );
    expect(grpcDetails(http).badRequest?.fieldViolations[0]?.description).toContain("https");
    const { endpoints } = await d.environments.unary(e.listWebhookEndpoints, {}, d.admin(env));
    expect(endpoints).toHaveLength(0);
  });

  it("when a name that was public resolves to a private address at delivery time, then the delivery is refused and logged, never sent", async () => {
    const env = await createEnvironment(d);
    const { endpoint } = await d.environments.unary(
      e.createWebhookEndpoint,
      { endpoint: { url: "https://hooks.example.test/hook", enabled: true, eventTypes: ["token.created"] } },
      d.admin(env),
    );
    dns.set("hooks.example.test", [{ address: "10.0.0.7", family: 4 }]);
    await d.tokens.unary(t.createToken, { name: "rebound", scopes: ["accounts:read"] }, d.admin(env));
    const logged = async () =>
      (await d.environments.unary(e.listWebhookDeliveries, { endpointId: endpoint?.id ?? "" }, d.admin(env)))
        .deliveries[0];
    await eventually(async () => ((await logged())?.attempts ?? 0) >= 1, 10_000, "the refused attempt in the log");
    const delivery = await logged();
    expect(delivery?.lastResponseCode).toBe(0);
    expect(delivery?.lastError).toContain("private");
    expect(delivery?.status).toBe(WebhookDeliveryStatus.PENDING);
    expect(delivery?.nextAttemptTime).toBeDefined();
  });
});

describe("a worker killed mid-delivery", () => {
  let config: Config;

  beforeAll(() => {
    // Short locks: a killed worker's job runs again within seconds.
    config = testConfig({
      ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
      ROOMKEY_WEBHOOK_TIMEOUT_MS: "20000",
      ROOMKEY_JOB_LOCK_MS: "2000",
    });
  });

  afterAll(async () => {
    await dropDeployment(config);
  });

  it("when the worker is SIGKILLed while an endpoint is receiving, then another worker delivers the event, with the same webhook-id", async () => {
    const api = await startTestServer(config, "api");
    const environments = grpcClient(EnvironmentService, api.grpcAddress);
    const tokens = grpcClient(TokenService, api.grpcAddress);
    try {
      const env = randomEnvironmentName();
      const admin = metadataFor(env, api.adminKey);
      await environments.unary(e.createEnvironment, {}, admin);
      const path = `killed-${env}`;
      // The first request is held open until the worker sending it dies; the next is answered.
      receiver.answer(path, "hang", 204);
      const created = await environments.unary(
        e.createWebhookEndpoint,
        { endpoint: { url: receiver.url(path), enabled: true, eventTypes: ["token.created"] } },
        admin,
      );
      const first = spawnRoomkey(config, "worker");
      await eventually(
        () => first.lines.some((l) => l.msg === "serving environment" && l.environment === env),
        30_000,
        "the first worker serves the environment",
      );
      await tokens.unary(t.createToken, { name: "in-flight", scopes: ["accounts:read"] }, admin);
      await eventually(() => receiver.received(path).length === 1, 10_000, "the delivery reaches the endpoint");
      first.child.kill("SIGKILL");
      await first.exited;

      const second = spawnRoomkey(config, "worker");
      await eventually(() => receiver.received(path).some((r) => r.answered === 204), 30_000, "the event delivered");
      const received = receiver.received(path);
      expect(new Set(received.map((r) => r.headers["webhook-id"])).size).toBe(1);
      for (const r of received) expect(signersOf(r, [created.signingSecret])).toEqual([0]);
      await eventually(
        async () =>
          (await environments.unary(e.listWebhookDeliveries, { endpointId: created.endpoint?.id ?? "" }, admin))
            .deliveries[0]?.status === WebhookDeliveryStatus.SUCCEEDED,
        10_000,
        "the log says delivered",
      );
      second.child.kill("SIGTERM");
      await second.exited;
    } finally {
      environments.close();
      tokens.close();
      await api.stop();
    }
  });
});

describe("a Redis that loses the webhook queue's jobs, and the purge", () => {
  let d: Deployment;

  beforeAll(async () => {
    d = await startDeployment(
      testConfig({
        ROOMKEY_WEBHOOK_ALLOW_HTTP: "true",
        ROOMKEY_WEBHOOK_RETRY_BASE_MS: "1500",
        ROOMKEY_WEBHOOK_SWEEP_MS: "500",
        ROOMKEY_JOB_LOCK_MS: "1000",
        ROOMKEY_WORKER_LEASE_MS: "1500",
        ROOMKEY_WEBHOOK_RETENTION_MS: "4000",
      }),
    );
  });

  afterAll(async () => {
    await d.stop();
  });

  // Its waits add up to 50 s: the test's own budget must not cut the 30 s one for the sweep short.
  it("when Redis loses a delivery's retry, then the sweep queues it again from MongoDB and it is delivered", {
    timeout: 60_000,
  }, async () => {
    const env = await createEnvironment(d);
    const path = `lost-${env}`;
    receiver.answer(path, 500, 204);
    const created = await d.environments.unary(
      e.createWebhookEndpoint,
      { endpoint: { url: receiver.url(path), enabled: true, eventTypes: ["token.created"] } },
      d.admin(env),
    );
    await d.tokens.unary(t.createToken, { name: "lost", scopes: ["accounts:read"] }, d.admin(env));
    await eventually(() => receiver.received(path).length === 1, 10_000, "the first, failed attempt");
    // The worker has written the attempt's outcome and scheduled the retry (else the wipe below would
    // also cut the attempt itself short: a different fault, with its own, longer recovery).
    await eventually(
      async () => {
        const [delivery] = (
          await d.environments.unary(e.listWebhookDeliveries, { endpointId: created.endpoint?.id ?? "" }, d.admin(env))
        ).deliveries;
        return delivery?.attempts === 1 && delivery.nextAttemptTime !== undefined;
      },
      10_000,
      "the failed attempt is logged with its retry",
    );
    // Redis comes back empty: every key of this deployment is gone, the delayed retry with them.
    const keys = await redisKeys(d.redis, `${d.server.config.ROOMKEY_QUEUE_PREFIX}:*`);
    if (keys.length > 0) await d.redis.del(...keys);
    // All but the retry's hash, left in no list (a partial loss, or a write racing the wipe): it must not
    // absorb the job the sweep queues again.
    const [logged] = (
      await d.environments.unary(e.listWebhookDeliveries, { endpointId: created.endpoint?.id ?? "" }, d.admin(env))
    ).deliveries;
    const orphan = `${d.server.config.ROOMKEY_QUEUE_PREFIX}:{${env}}.webhook:deliver-${logged?.id}`;
    await d.redis.hset(orphan, "name", "deliver", "data", "{}", "timestamp", String(Date.now()));
    await eventually(() => receiver.received(path).length === 2, 30_000, "the retry, queued again by the sweep");
    expect(receiver.received(path)[1]?.answered).toBe(204);
    expect(receiver.received(path)[1]?.headers["webhook-id"]).toBe(receiver.received(path)[0]?.headers["webhook-id"]);
    await eventually(
      async () =>
        (await d.environments.unary(e.listWebhookDeliveries, { endpointId: created.endpoint?.id ?? "" }, d.admin(env)))
          .deliveries[0]?.status === WebhookDeliveryStatus.SUCCEEDED,
      10_000,
      "the log says delivered",
    );
  });

  it("when the retention period has passed, then the purge job removes the event and its deliveries", async () => {
    const env = await createEnvironment(d);
    const path = `purged-${env}`;
    const created = await d.environments.unary(
      e.createWebhookEndpoint,
      { endpoint: { url: receiver.url(path), enabled: true, eventTypes: ["token.created"] } },
      d.admin(env),
    );
    await d.tokens.unary(t.createToken, { name: "old", scopes: ["accounts:read"] }, d.admin(env));
    await eventually(() => receiver.received(path).length === 1, 10_000, "the delivery");
    const eventId = String(receiver.received(path)[0]?.headers["webhook-id"]);
    const list = () => d.environments.unary(e.listWebhookDeliveries, { eventId }, d.admin(env));
    expect((await list()).deliveries).toHaveLength(1);
    await eventually(async () => (await list()).deliveries.length === 0, 20_000, "the log purged");
    const gone = await grpcFailure(d.environments.unary(e.redeliverWebhookEvent, { eventId }, d.admin(env)));
    expect(gone.code).toBe(status.NOT_FOUND);
    // The endpoint itself stays.
    const { endpoint } = await d.environments.unary(
      e.getWebhookEndpoint,
      { id: created.endpoint?.id ?? "" },
      d.admin(env),
    );
    expect(endpoint?.enabled).toBe(true);
  });
});
