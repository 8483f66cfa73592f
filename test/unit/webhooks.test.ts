import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import type { AccountEvent, AccountStatus, AccountView } from "../../src/domain/accounts/accounts.js";
import type { Token } from "../../src/domain/tokens/tokens.js";
import type { AttemptRecord, DeliveryFilter, SendOutcome, WebhookStore } from "../../src/domain/webhooks/ports.js";
import { createWebhookDelivery, DeliveryAttemptFailedError } from "../../src/domain/webhooks/webhook-delivery.js";
import { accountEventType, accountWebhooks, createWebhookRaiser } from "../../src/domain/webhooks/webhook-raiser.js";
import { createWebhookService } from "../../src/domain/webhooks/webhook-service.js";
import {
  eventIdFor,
  signature,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookEventRecord,
} from "../../src/domain/webhooks/webhooks.js";
import { webhookBackoffJitter, webhookRetryDelayMs, webhookRetrySchedule } from "../../src/queue/retry-policy.js";
import { fakeClock } from "../helpers/fakes.js";

const hour = 3_600_000;

describe("the webhook retry schedule", () => {
  const config = loadConfig({ ROOMKEY_ADMIN_KEY: "k".repeat(32), ROOMKEY_MASTER_KEY: `${"A".repeat(43)}=` });
  const { ROOMKEY_WEBHOOK_ATTEMPTS: attempts, ROOMKEY_WEBHOOK_RETRY_BASE_MS: base } = config;
  const max = config.ROOMKEY_WEBHOOK_RETRY_MAX_MS;

  it("when the defaults are used, then retries grow by 4 from 5 s to 8 h and span more than 24 hours even at the low end of the jitter", () => {
    const schedule = webhookRetrySchedule(attempts, base, max);
    expect(schedule.map((ms) => Math.round(ms / 1000))).toEqual([
      5, 20, 80, 320, 1280, 5120, 20480, 28800, 28800, 28800,
    ]);
    const total = schedule.reduce((sum, ms) => sum + ms, 0);
    expect(total / hour).toBeCloseTo(31.58, 1);
    expect((total * (1 - webhookBackoffJitter)) / hour).toBeGreaterThan(24);
  });

  it("when a delay is drawn, then it stays within the jitter of the schedule", () => {
    for (let failed = 1; failed <= 10; failed++) {
      const plain = webhookRetrySchedule(attempts, base, max)[failed - 1] as number;
      for (const random of [0, 0.5, 0.999]) {
        const delay = webhookRetryDelayMs(failed, base, max, () => random);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(plain * (1 - webhookBackoffJitter)));
        expect(delay).toBeLessThanOrEqual(Math.ceil(plain * (1 + webhookBackoffJitter)));
      }
    }
  });
});

describe("signing", () => {
  it("when the Standard Webhooks reference vector is signed, then the signature is the reference's", () => {
    const body = '{"test": 2432232314}';
    expect(signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)).toBe(
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
  });

  it("when the same happening is raised twice, then it has the same id; another happening, another id", () => {
    const at = new Date(Date.UTC(2030, 0, 1));
    expect(eventIdFor("account/acc_1/account.active/1", at)).toBe(eventIdFor("account/acc_1/account.active/1", at));
    expect(eventIdFor("account/acc_1/account.active/1", at)).not.toBe(eventIdFor("account/acc_2/account.active/1", at));
    expect(eventIdFor("x", at)).toMatch(/^evt_[0-9A-Za-z]{22}$/);
  });
});

describe("account status changes as event types", () => {
  const change = (previous: AccountStatus, status: AccountStatus, reauthorizedFrom?: AccountStatus): AccountEvent => ({
    account: { id: "acc_1", status } as AccountView,
    previousStatus: previous,
    eventTime: new Date(),
    ...(reauthorizedFrom ? { reauthorizedFrom } : {}),
  });

  it("when an account changes status, then the type says how", () => {
    expect(accountEventType(change("connecting", "connecting"))).toBe("account.created");
    expect(accountEventType(change("connecting", "active"))).toBe("account.active");
    expect(accountEventType(change("connecting", "active", "failed"))).toBe("account.active");
    expect(accountEventType(change("connecting", "active", "needs_reauth"))).toBe("account.recovered");
    expect(accountEventType(change("connecting", "failed"))).toBe("account.failed");
    expect(accountEventType(change("active", "needs_reauth"))).toBe("account.needs_reauth");
    expect(accountEventType(change("active", "disconnected"))).toBe("account.deleted");
    // A re-authorization starting is no event of its own: its outcome is.
    expect(accountEventType(change("needs_reauth", "connecting"))).toBeUndefined();
  });
});

/** The webhook store in memory, as the domain sees it. */
function memoryStore() {
  const endpoints = new Map<string, WebhookEndpoint>();
  const events = new Map<string, WebhookEventRecord>();
  const deliveries = new Map<string, WebhookDelivery>();
  const store: WebhookStore = {
    insertEndpoint: async (_env, endpoint) => void endpoints.set(endpoint.id, structuredClone(endpoint)),
    getEndpoint: async (_env, id) => structuredClone(endpoints.get(id)),
    listEndpoints: async () => [...endpoints.values()],
    allEndpoints: async () => [...endpoints.values()].map((e) => structuredClone(e)),
    countEndpoints: async () => endpoints.size,
    async updateEndpoint(_env, endpoint, changes, unset = []) {
      const now = endpoints.get(endpoint.id);
      if (!now || now.version !== endpoint.version) return false;
      const next = { ...now, ...changes, version: now.version + 1 };
      for (const field of unset) delete next[field];
      endpoints.set(endpoint.id, next);
      return true;
    },
    removeEndpoint: async (_env, id) => endpoints.delete(id),
    async insertEvent(_env, event) {
      if (events.has(event.id)) return false;
      events.set(event.id, event);
      return true;
    },
    getEvent: async (_env, id) => events.get(id),
    insertDeliveries: async (_env, list) => {
      for (const delivery of list) if (!deliveries.has(delivery.id)) deliveries.set(delivery.id, { ...delivery });
    },
    getDelivery: async (_env, id) => deliveries.get(id),
    async recordAttempt(_env, id, jobId, attempt: AttemptRecord) {
      const delivery = deliveries.get(id);
      if (!delivery || delivery.jobId !== jobId) return false;
      Object.assign(delivery, {
        status: attempt.status,
        attempts: delivery.attempts + 1,
        lastResponseCode: attempt.responseCode,
        lastError: attempt.error,
        nextAttemptTime: attempt.nextAttemptTime,
      });
      return true;
    },
    async endDelivery(_env, id, reason) {
      const delivery = deliveries.get(id);
      if (delivery?.status === "pending") Object.assign(delivery, { status: "failed", lastError: reason });
    },
    restartDelivery: async () => undefined,
    listDeliveries: async (_env, filter: DeliveryFilter) =>
      [...deliveries.values()].filter((d) => !filter.endpointId || d.endpointId === filter.endpointId),
    listOverdue: async () => [],
    async failPending(_env, endpointId, reason) {
      let n = 0;
      for (const d of deliveries.values()) {
        if (d.endpointId === endpointId && d.status === "pending") {
          Object.assign(d, { status: "failed", lastError: reason });
          n++;
        }
      }
      return n;
    },
    purge: async () => ({ events: 0, deliveries: 0 }),
  };
  return { store, endpoints, events, deliveries };
}

function setup(
  options: { allowHttp?: boolean; deliverHttp?: boolean; disableAfterMs?: number; sends?: SendOutcome[] } = {},
) {
  const clock = fakeClock();
  const memory = memoryStore();
  const dataKey = randomBytes(32);
  const queued = { deliveries: [] as string[] };
  const queue = {
    deliver: async (_env: string, jobs: readonly { jobId: string }[]) =>
      void queued.deliveries.push(...jobs.map((j) => j.jobId)),
    // As if Redis had none of them: every one is queued again.
    requeue: async (_env: string, jobs: readonly { jobId: string }[]) =>
      queued.deliveries.push(...jobs.map((j) => j.jobId)) && jobs.length,
  };
  const keys = { dataKey: async () => dataKey };
  const warnings: string[] = [];
  const raiser = createWebhookRaiser({
    store: memory.store,
    queue,
    render: (event) => JSON.stringify({ id: event.id, type: event.type, data: event.data }),
    attempts: 5,
    clock,
    warn: (message) => void warnings.push(message),
    retries: { tries: 2, pauseMs: 1 },
  });
  const service = createWebhookService({
    store: memory.store,
    queue,
    keys,
    destinations: { check: async () => ({ allowed: true }) },
    allowHttp: options.allowHttp ?? true,
    defaultOverlapMs: 24 * hour,
    attempts: 5,
    clock,
  });
  const sent: { url: string; headers: Record<string, string>; body: string }[] = [];
  const answers = [...(options.sends ?? [])];
  const expiringTokens: Token[] = [];
  const announced: string[] = [];
  let expiringLooks = 0;
  const delivery = createWebhookDelivery({
    store: memory.store,
    queue,
    keys,
    async send(url, headers, body) {
      sent.push({ url, headers, body });
      return answers.length > 1 ? (answers.shift() as SendOutcome) : (answers[0] ?? { kind: "response", status: 204 });
    },
    raiser,
    expiring: {
      listExpiringUnannounced: async () => {
        expiringLooks++;
        return expiringTokens.filter((t) => !announced.includes(t.id));
      },
      markExpiringAnnounced: async (_env, id) => void announced.push(id),
    },
    attempts: 5,
    allowHttp: options.deliverHttp ?? options.allowHttp ?? true,
    retryDelayMs: (failed) => 1_000 * failed,
    disableAfterMs: options.disableAfterMs ?? 10 * hour,
    expiringWindowMs: 7 * 24 * hour,
    retentionMs: 30 * 24 * hour,
    overdueMs: 60_000,
    clock,
  });
  return {
    clock,
    memory,
    queued,
    raiser,
    service,
    delivery,
    sent,
    warnings,
    expiringTokens,
    announced,
    looks: () => expiringLooks,
  };
}

const input = { url: "https://hooks.example/x", eventTypes: [], enabled: true, description: "" };

describe("raising events", () => {
  it("when no enabled endpoint wants the type, then nothing is stored or queued", async () => {
    const { raiser, service, memory, queued } = setup();
    const time = new Date();
    expect(await raiser.raise("dev", { type: "token.created", key: "k1", time, data: {} })).toBeUndefined();
    const { endpoint } = await service.create("dev", { ...input, eventTypes: ["account.active"] });
    await service.create("dev", { ...input, enabled: false });
    expect(await raiser.raise("dev", { type: "token.created", key: "k2", time, data: {} })).toBeUndefined();
    expect(memory.events.size + memory.deliveries.size + queued.deliveries.length).toBe(0);
    expect(await raiser.raise("dev", { type: "account.active", key: "k3", time, data: {} })).toMatch(/^evt_/);
    expect(endpoint.eventTypes).toEqual(["account.active"]);
    // One delivery, to the one endpoint that wants the type, stored and queued.
    expect([...memory.deliveries.values()].map((d) => d.endpointId)).toEqual([endpoint.id]);
    expect(queued.deliveries).toHaveLength(1);
  });

  it("when the same change is raised twice (a job run again), then one event is stored and its delivery queued once", async () => {
    const { raiser, service, memory, queued } = setup();
    await service.create("dev", input);
    const event = { type: "token.revoked" as const, key: "token/tok_1/token.revoked", time: new Date(), data: {} };
    expect(await raiser.raise("dev", event)).toBe(await raiser.raise("dev", event));
    expect(memory.events.size).toBe(1);
    expect(memory.deliveries.size).toBe(1);
    expect(queued.deliveries).toHaveLength(1);
  });

  it("when the deliveries cannot be queued (Redis down), then they are stored pending for the sweep, and the raise succeeds", async () => {
    const { service, memory, warnings } = setup();
    await service.create("dev", input);
    const failing = createWebhookRaiser({
      store: memory.store,
      queue: {
        async deliver() {
          throw new Error("Redis is unreachable");
        },
      },
      attempts: 5,
      render: () => "{}",
      clock: fakeClock(),
      warn: (message) => void warnings.push(message),
    });
    expect(await failing.raise("dev", { type: "token.created", key: "down", time: new Date(), data: {} })).toMatch(
      /^evt_/,
    );
    expect(warnings).toEqual(["could not queue webhook deliveries; the webhook sweep will"]);
    expect([...memory.deliveries.values()].map((d) => d.status)).toEqual(["pending"]);
  });

  it("when a handshake's outcome is told again later, then it is the same event (named by the attempt, not the time)", async () => {
    const { raiser, service, memory } = setup();
    await service.create("dev", input);
    const hooks = accountWebhooks(raiser);
    const startTime = new Date(Date.UTC(2030, 0, 1));
    const outcome = (eventTime: Date): AccountEvent => ({
      account: { id: "acc_1", status: "active" } as AccountView,
      previousStatus: "connecting",
      eventTime,
      handshake: { attempt: 2, startTime },
    });
    await hooks("dev", outcome(new Date(startTime.getTime() + 1_000)));
    await hooks("dev", outcome(new Date(startTime.getTime() + 90_000)));
    expect([...memory.events.values()].map((e) => e.type)).toEqual(["account.active"]);
  });

  it("when the store fails after a committed change, then the raise warns and does not fail its caller", async () => {
    const { raiser, service, memory, warnings } = setup();
    await service.create("dev", input);
    memory.store.insertEvent = async () => {
      throw new Error("MongoDB is unreachable");
    };
    await raiser.raiseCommitted("dev", { type: "token.created", key: "k", time: new Date(), data: {} });
    expect(warnings).toEqual(["a webhook event was lost: it could not be stored"]);
  });
});

describe("endpoints", () => {
  it("when a URL is http where the deployment refuses it, carries a password, or an event type is unknown, then the field is named", async () => {
    const { service } = setup({ allowHttp: false });
    await expect(service.create("dev", { ...input, url: "http://hooks.example/x" })).rejects.toThrow(
      /endpoint.url.*https/,
    );
    await expect(service.create("dev", { ...input, url: "https://u:p@hooks.example/x" })).rejects.toThrow(/password/);
    await expect(service.create("dev", { ...input, eventTypes: ["account.exploded"] })).rejects.toThrow(
      /endpoint.event_types/,
    );
  });

  it("when an environment has 50 endpoints, then the 51st is refused", async () => {
    const { service } = setup();
    for (let i = 0; i < 50; i++) await service.create("dev", input);
    await expect(service.create("dev", input)).rejects.toMatchObject({ reason: "WEBHOOK_ENDPOINT_LIMIT" });
  });
});

describe("the webhook sweep", () => {
  it("when a token enters the expiry window, then token.expiring is raised once, and the sweep looks at most every 15 minutes", async () => {
    const ctx = setup();
    await ctx.service.create("dev", input);
    const now = ctx.clock.now().getTime();
    ctx.expiringTokens.push({
      id: "tok_1",
      createTime: new Date(now - 30 * 24 * hour),
      expireTime: new Date(now + 6 * 24 * hour),
    } as Token);
    expect((await ctx.delivery.sweep("dev")).expiring).toBe(1);
    expect((await ctx.delivery.sweep("dev")).expiring).toBe(0);
    expect(ctx.looks()).toBe(1);
    ctx.clock.advance(15 * 60_000);
    expect((await ctx.delivery.sweep("dev")).expiring).toBe(0);
    expect(ctx.looks()).toBe(2);
    const raised = [...ctx.memory.events.values()].filter((e) => e.type === "token.expiring");
    expect(raised).toHaveLength(1);
    expect(ctx.announced).toEqual(["tok_1"]);
  });
});

describe("delivering", () => {
  async function oneDelivery(ctx: ReturnType<typeof setup>, url = input.url) {
    const { endpoint, secret } = await ctx.service.create("dev", { ...input, url });
    const id = await ctx.raiser.raise("dev", {
      type: "token.created",
      key: `k${Math.random()}`,
      time: ctx.clock.now(),
      data: {},
    });
    const [made] = [...ctx.memory.deliveries.values()].filter((d) => d.eventId === id) as [WebhookDelivery];
    return {
      endpoint,
      secret,
      made,
      target: { deliveryId: made.id, eventId: made.eventId, endpointId: endpoint.id, jobId: made.jobId },
    };
  }

  it("when an attempt fails, then the next is due after the schedule's delay, and the endpoint is failing since then", async () => {
    const ctx = setup({ sends: [{ kind: "response", status: 500 }] });
    const { target, endpoint } = await oneDelivery(ctx);
    const failure = await ctx.delivery.deliver("dev", target, 0, 5).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DeliveryAttemptFailedError);
    expect((failure as DeliveryAttemptFailedError).retryAfterMs).toBe(1_000);
    // The next one goes on with the schedule from the attempts written down, also in a re-queued job.
    const second = await ctx.delivery.deliver("dev", target, 0, 4).catch((error: unknown) => error);
    expect((second as DeliveryAttemptFailedError).retryAfterMs).toBe(2_000);
    expect(ctx.memory.deliveries.get(target.deliveryId)).toMatchObject({ status: "pending", lastResponseCode: 500 });
    expect(ctx.memory.endpoints.get(endpoint.id)?.failingSince).toEqual(ctx.clock.now());
  });

  it("when an endpoint answers a redirect, then the attempt failed (redirects are not followed)", async () => {
    const ctx = setup({ sends: [{ kind: "response", status: 302 }] });
    const { target } = await oneDelivery(ctx);
    const failure = await ctx.delivery.deliver("dev", target, 0, 5).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DeliveryAttemptFailedError);
    expect(ctx.memory.deliveries.get(target.deliveryId)).toMatchObject({
      status: "pending",
      lastResponseCode: 302,
      lastError: "HTTP 302 (redirects are not followed)",
    });
  });

  it("when the last attempt fails, then the delivery ends FAILED without another try", async () => {
    const ctx = setup({ sends: [{ kind: "failed", reason: "no answer within 15000 ms" }] });
    const { target } = await oneDelivery(ctx);
    expect(await ctx.delivery.deliver("dev", target, 4, 5)).toEqual({
      outcome: "failed",
      why: "no answer within 15000 ms",
    });
    expect(ctx.memory.deliveries.get(target.deliveryId)).toMatchObject({ status: "failed", lastResponseCode: 0 });
  });

  it("when an endpoint has failed for longer than the limit, then it is disabled, its pending deliveries end, and the others are told", async () => {
    const ctx = setup({ disableAfterMs: hour, sends: [{ kind: "response", status: 503 }] });
    const watcher = await ctx.service.create("dev", { ...input, eventTypes: ["webhook.endpoint_disabled"] });
    const { target, endpoint } = await oneDelivery(ctx);
    await ctx.delivery.deliver("dev", target, 0, 5).catch(() => undefined);
    ctx.clock.advance(hour);
    expect(await ctx.delivery.deliver("dev", target, 1, 5)).toEqual({ outcome: "failed", why: "HTTP 503" });
    const disabled = ctx.memory.endpoints.get(endpoint.id);
    expect(disabled?.enabled).toBe(false);
    expect(disabled?.disabledReason).toMatch(/every delivery failed for 60 minutes .*HTTP 503/);
    const told = [...ctx.memory.events.values()].find((e) => e.type === "webhook.endpoint_disabled");
    expect(JSON.parse(told?.body ?? "{}").data.endpoint.id).toBe(endpoint.id);
    expect(watcher.endpoint.enabled).toBe(true);
    // Further jobs of the disabled endpoint send nothing.
    const before = ctx.sent.length;
    expect((await ctx.delivery.deliver("dev", target, 2, 5)).outcome).toBe("skipped");
    expect(ctx.sent.length).toBe(before);
  });

  it("when a job comes for a delivery that another job carries, or that ended, then it sends nothing", async () => {
    const ctx = setup();
    const { target } = await oneDelivery(ctx);
    expect(await ctx.delivery.deliver("dev", { ...target, jobId: "deliver-old" }, 0, 5)).toEqual({
      outcome: "skipped",
      why: "another job carries the delivery",
    });
    expect(ctx.sent).toHaveLength(0);
    expect(await ctx.delivery.deliver("dev", target, 0, 5)).toEqual({ outcome: "succeeded", status: 204 });
    // Run again (a job added again after it completed): the delivery succeeded, nothing is sent twice.
    expect(await ctx.delivery.deliver("dev", target, 0, 5)).toEqual({
      outcome: "skipped",
      why: "the delivery succeeded",
    });
    expect(ctx.sent).toHaveLength(1);
  });

  it("when the deployment no longer allows http, then an http endpoint's attempt is refused without a request", async () => {
    // Made while http was allowed; delivered by a deployment that no longer allows it.
    const ctx = setup({ allowHttp: true, deliverHttp: false });
    const { target } = await oneDelivery(ctx, "http://hooks.example/x");
    const failure = await ctx.delivery.deliver("dev", target, 0, 5).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DeliveryAttemptFailedError);
    expect(ctx.sent).toHaveLength(0);
    expect(ctx.memory.deliveries.get(target.deliveryId)?.lastError).toContain("https only");
  });

  it("when an attempt succeeds, then the endpoint's failing record is cleared", async () => {
    const ctx = setup({
      sends: [
        { kind: "response", status: 500 },
        { kind: "response", status: 200 },
      ],
    });
    const { target, endpoint } = await oneDelivery(ctx);
    await ctx.delivery.deliver("dev", target, 0, 5).catch(() => undefined);
    expect(await ctx.delivery.deliver("dev", target, 1, 5)).toEqual({ outcome: "succeeded", status: 200 });
    expect(ctx.memory.endpoints.get(endpoint.id)?.failingSince).toBeUndefined();
  });

  it("when the secret was rotated, then both secrets sign during the overlap, and only the new one after it", async () => {
    const ctx = setup();
    const { target, endpoint, secret } = await oneDelivery(ctx);
    const rotated = await ctx.service.rotateSecret("dev", endpoint.id, hour);
    await ctx.delivery.deliver("dev", target, 0, 5);
    const signed = (n: number) => ctx.sent[n]?.headers["webhook-signature"]?.split(" ") ?? [];
    const { headers, body } = ctx.sent[0] as { headers: Record<string, string>; body: string };
    const ts = Number(headers["webhook-timestamp"]);
    expect(signed(0)).toEqual([
      signature(rotated.secret, headers["webhook-id"] as string, ts, body),
      signature(secret, headers["webhook-id"] as string, ts, body),
    ]);
    ctx.clock.advance(hour);
    const later = await ctx.raiser.raise("dev", {
      type: "token.created",
      key: "later",
      time: ctx.clock.now(),
      data: {},
    });
    const next = [...ctx.memory.deliveries.values()].find((d) => d.eventId === later) as WebhookDelivery;
    await ctx.delivery.deliver(
      "dev",
      { ...target, deliveryId: next.id, eventId: next.eventId, jobId: next.jobId },
      0,
      5,
    );
    expect(signed(1)).toHaveLength(1);
  });
});
