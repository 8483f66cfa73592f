import { describe, expect, it } from "vitest";
import { offeredSecret } from "../../src/admin/queue-dashboard.js";
import { createMetrics } from "../../src/metrics/metrics.js";
import type { OutboundResult } from "../../src/providers/outbound-http.js";
import { callProvider, type ProviderCallOutcome } from "../../src/providers/provider-call.js";
import { queueKinds } from "../../src/queue/queue-names.js";

function answered(status: number): OutboundResult {
  return {
    kind: "response",
    response: { status, text: "", contentType: "", tooLarge: false, header: () => undefined },
  };
}

describe("provider call outcomes", () => {
  const cases: [string, OutboundResult, ProviderCallOutcome][] = [
    ["a 200", answered(200), "2xx"],
    ["a 401", answered(401), "4xx"],
    ["a 302", answered(302), "3xx"],
    ["a 429", answered(429), "busy"],
    ["a 503", answered(503), "busy"],
    ["no connection", { kind: "failed", reason: "ECONNREFUSED" }, "unreachable"],
    ["the outbound guard", { kind: "refused", reason: "private address" }, "refused"],
  ];
  for (const [what, result, outcome] of cases) {
    it(`${what} is ${outcome}`, async () => {
      const seen: [string, string, number][] = [];
      await callProvider(
        { send: async () => result, maxRetryAfterMs: 1_000, observe: (call, o, s) => seen.push([call, o, s]) },
        { url: "https://provider.example/me", method: "GET", headers: {} },
        { kind: "credential_check", what: "the provider" },
        () => "busy",
      );
      expect(seen).toHaveLength(1);
      expect(seen[0]?.[0]).toBe("credential_check");
      expect(seen[0]?.[1]).toBe(outcome);
      expect(seen[0]?.[2]).toBeGreaterThanOrEqual(0);
    });
  }
});

describe("the dashboard's credentials", () => {
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  it("takes the admin key as a bearer secret or as a Basic password, whatever the user name", () => {
    expect(offeredSecret("Bearer k3y")).toBe("k3y");
    expect(offeredSecret(basic("admin", "k3y:with:colons"))).toBe("k3y:with:colons");
    expect(offeredSecret(basic("", "k3y"))).toBe("k3y");
  });
  it("offers nothing for a missing, empty or other scheme", () => {
    expect(offeredSecret(undefined)).toBeUndefined();
    expect(offeredSecret("")).toBeUndefined();
    expect(offeredSecret("Bearer ")).toBeUndefined();
    expect(offeredSecret(basic("admin", ""))).toBeUndefined();
    expect(offeredSecret("Digest abc")).toBeUndefined();
    expect(offeredSecret(`Basic ${"A".repeat(5_000)}`)).toBeUndefined();
  });
});

describe("metrics labels", () => {
  const sources = {
    environments: () => ["development", "staging"],
    hasEnvironment: (name: string) => name === "development" || name === "staging",
    queueCounts: async () => ({ waiting: 3, active: 1, delayed: 0, failed: 2 }),
    backends: () => ({ mongodb: true, redis: true }),
  };
  /** Metrics of a worker process serving both environments (queue counts are reported by the serving worker). */
  const workerMetrics = (given: Parameters<typeof createMetrics>[0], options?: Parameters<typeof createMetrics>[1]) => {
    const metrics = createMetrics(given, options);
    metrics.attachWorkers({ served: () => ["development", "staging"], liveQueues: () => 1 });
    return metrics;
  };
  it("never takes an environment name it does not know as a label value", async () => {
    const metrics = createMetrics(sources);
    metrics.authenticationFailed("TOKEN_WRONG_ENVIRONMENT", { requested: "attacker-chosen", token: "staging" });
    metrics.authenticationFailed("TOKEN_WRONG_ENVIRONMENT", { requested: "development", token: "staging" });
    const { body } = await metrics.scrape();
    expect(body).not.toContain("attacker-chosen");
    expect(body).toContain(
      'roomkey_auth_wrong_environment_total{requested_environment="other",token_environment="staging"} 1',
    );
    expect(body).toContain(
      'roomkey_auth_wrong_environment_total{requested_environment="development",token_environment="staging"} 1',
    );
    expect(body).toContain('roomkey_auth_failures_total{reason="TOKEN_WRONG_ENVIRONMENT"} 2');
  });
  it("when data keys are under several master keys, then roomkey_data_keys counts them per key, and a key gone leaves the series", async () => {
    let counts: Record<string, number> = { "key-b": 2, "key-a": 1 };
    const metrics = createMetrics({ ...sources, dataKeys: () => counts });
    expect((await metrics.scrape()).body).toContain('roomkey_data_keys{master_key="key-a"} 1');
    counts = { "key-b": 3 };
    const { body } = await metrics.scrape();
    expect(body).toContain('roomkey_data_keys{master_key="key-b"} 3');
    expect(body).not.toContain('master_key="key-a"');
  });
  it("reads queue depth and reachability when scraped", async () => {
    const { body } = await workerMetrics(sources).scrape();
    expect(body).toContain('roomkey_queue_jobs{environment="staging",queue="rotation",state="failed"} 2');
    expect(body).toContain('roomkey_queue_jobs{environment="development",queue="handshake",state="waiting"} 3');
    expect(body).toContain('roomkey_backend_up{backend="redis"} 1');
    expect(body).toContain('roomkey_backend_up{backend="mongodb"} 1');
  });
  it("when Redis does not answer, then a scrape answers at once, without queue counts", async () => {
    const metrics = workerMetrics(
      {
        ...sources,
        queueCounts: () => new Promise(() => undefined),
        backends: () => ({ mongodb: true, redis: false }),
      },
      { queueCountTimeoutMs: 5_000 },
    );
    const started = performance.now();
    const { body } = await metrics.scrape();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(body).not.toContain("roomkey_queue_jobs{");
    expect(body).toContain('roomkey_backend_up{backend="redis"} 0');
  });
  it("leaves out queue counts that do not come in time, and still answers", async () => {
    const metrics = workerMetrics(
      { ...sources, queueCounts: () => new Promise(() => undefined) },
      { queueCountTimeoutMs: 50 },
    );
    const { body } = await metrics.scrape();
    expect(body).not.toContain("roomkey_queue_jobs{");
    expect(body).toContain("roomkey_backend_up");
  });

  it("when no workers run in the process (an API process), then it reads no queue and says it serves none", async () => {
    let reads = 0;
    const { body } = await createMetrics({ ...sources, queueCounts: async () => ({ waiting: ++reads }) }).scrape();
    expect(reads).toBe(0);
    expect(body).not.toContain("roomkey_queue_jobs{");
    expect(body).toContain("roomkey_worker_environments 0");
  });
  it("when a worker process serves some environments, then only their queues are read, and it says how many are live", async () => {
    const read: string[] = [];
    const metrics = createMetrics({
      ...sources,
      queueCounts: async (environment) => {
        read.push(environment);
        return { waiting: 1 };
      },
    });
    metrics.attachWorkers({ served: () => ["staging"], liveQueues: () => 2 });
    const { body } = await metrics.scrape();
    expect([...new Set(read)]).toEqual(["staging"]);
    expect(body).not.toContain('environment="development"');
    expect(body).toContain("roomkey_worker_environments 1");
    expect(body).toContain("roomkey_worker_live_queues 2");
  });
  it("reads the queues at most once per interval, however often it is scraped", async () => {
    let reads = 0;
    const counted = { ...sources, queueCounts: async () => ({ waiting: ++reads }) };
    const metrics = workerMetrics(counted, { queueCountEveryMs: 60_000 });
    await Promise.all([metrics.scrape(), metrics.scrape()]);
    await metrics.scrape();
    // Two environments, a queue of each kind each: one reading.
    expect(reads).toBe(2 * queueKinds.length);
    const always = workerMetrics(counted, { queueCountEveryMs: 0 });
    reads = 0;
    await always.scrape();
    await always.scrape();
    expect(reads).toBe(4 * queueKinds.length);
  });
});
