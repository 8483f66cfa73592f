import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { parseEnvironmentName } from "../../src/domain/environments/environment-name.js";
import { createWakeIndex } from "../../src/queue/wake-index.js";
import { createWorkerFleet } from "../../src/queue/worker-fleet.js";
import { randomPrefix } from "../helpers/names.js";
import { backendUrls, redisKeys } from "../helpers/server.js";

/** The wake index and the fleet heartbeat on the real Redis: the Redis semantics they rely on. */
let redis: Redis;
const prefixes: string[] = [];

beforeAll(() => {
  redis = new Redis(backendUrls().redisUrl);
});

afterAll(async () => {
  if (!redis) return;
  for (const prefix of prefixes) {
    const keys = await redisKeys(redis, `${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis?.disconnect();
});

function fresh() {
  const prefix = randomPrefix();
  prefixes.push(prefix);
  return prefix;
}

describe("the wake index", () => {
  const dev = parseEnvironmentName("dev");

  it("when a job is signalled now and another later, then only the first is due, and a later signal never pushes an entry back", async () => {
    const wakes = createWakeIndex({ redis, prefix: fresh() });
    await wakes.now(dev, "handshake", 1_000);
    await wakes.at("{dev}.webhook", 5_000);
    expect(await wakes.due(2_000, 10)).toEqual([{ queue: "{dev}.handshake", at: 1_000 }]);
    // A delayed job for later leaves the earlier time; one for sooner brings it forward.
    await wakes.at("{dev}.webhook", 9_000);
    await wakes.at("{dev}.webhook", 4_000);
    expect(await wakes.due(4_000, 10)).toEqual([
      { queue: "{dev}.handshake", at: 1_000 },
      { queue: "{dev}.webhook", at: 4_000 },
    ]);
  });

  it("when an entry is taken, then it goes; when a producer signalled again since it was read, then the signal stays", async () => {
    const wakes = createWakeIndex({ redis, prefix: fresh() });
    await wakes.now(dev, "handshake", 1_000);
    const [read] = await wakes.due(1_000, 10);
    if (!read) throw new Error("due");
    await wakes.now(dev, "handshake", 1_001);
    expect(await wakes.take(read)).toBe(false);
    const [again] = await wakes.due(2_000, 10);
    expect(again).toEqual({ queue: "{dev}.handshake", at: 1_001 });
    if (!again) throw new Error("due");
    expect(await wakes.take(again)).toBe(true);
    expect(await wakes.due(10_000, 10)).toEqual([]);
  });

  it("when an environment is forgotten, then none of its queues is due any more", async () => {
    const wakes = createWakeIndex({ redis, prefix: fresh() });
    await wakes.now(dev, "handshake", 1);
    await wakes.now(dev, "rotation", 1);
    await wakes.now(parseEnvironmentName("kept"), "rotation", 1);
    await wakes.forget(["{dev}.handshake", "{dev}.rotation", "{dev}.webhook"]);
    expect((await wakes.due(10, 10)).map((e) => e.queue)).toEqual(["{kept}.rotation"]);
  });
});

describe("the fleet heartbeat", () => {
  it("when two processes beat, then each sees both; when one stops, then after its lease only the other remains", async () => {
    const prefix = fresh();
    const a = createWorkerFleet({ redis, prefix, id: "a", leaseMs: 1_000 });
    const b = createWorkerFleet({ redis, prefix, id: "b", leaseMs: 1_000 });
    await a.beat(10_000);
    expect((await b.beat(10_100)).members).toEqual(["a", "b"]);
    expect((await a.beat(10_500)).members).toEqual(["a", "b"]);
    // b stopped beating at 10,100: at 11,200 its lease is over.
    expect((await a.beat(11_200)).members).toEqual(["a"]);
    await a.leave();
    expect(await redis.zrange(`${prefix}:{fleet}:workers`, 0, -1)).toEqual(["b"]);
  });

  it("when Redis loses the fleet's keys between two beats, then the next beat says so, once", async () => {
    const prefix = fresh();
    const a = createWorkerFleet({ redis, prefix, id: "a", leaseMs: 1_000 });
    const b = createWorkerFleet({ redis, prefix, id: "b", leaseMs: 1_000 });
    expect((await a.beat(1_000)).redisLost).toBe(false);
    expect((await b.beat(1_000)).redisLost).toBe(false);
    expect((await a.beat(1_100)).redisLost).toBe(false);
    await redis.del(`${prefix}:{fleet}:workers`, `${prefix}:{fleet}:epoch`);
    // Whichever beats first sets the epoch again: both see that it changed.
    expect((await a.beat(1_200)).redisLost).toBe(true);
    expect((await b.beat(1_200)).redisLost).toBe(true);
    expect((await a.beat(1_300)).redisLost).toBe(false);
    expect((await b.beat(1_300)).members).toEqual(["a", "b"]);
  });
});

describe("REDIS_CLUSTER_NODES", () => {
  it("when it lists nodes, then they are parsed; when one is not host:port, then start-up stops naming the variable", () => {
    const base = { ROOMKEY_ADMIN_KEY: "a".repeat(32), ROOMKEY_MASTER_KEY: `${"A".repeat(43)}=` };
    expect(loadConfig({ ...base, REDIS_CLUSTER_NODES: "r1:7000, r2:7001" }).REDIS_CLUSTER_NODES).toEqual([
      "r1:7000",
      "r2:7001",
    ]);
    expect(loadConfig(base).REDIS_CLUSTER_NODES).toEqual([]);
    expect(() => loadConfig({ ...base, REDIS_CLUSTER_NODES: "redis://r1:7000" })).toThrow(/REDIS_CLUSTER_NODES/);
  });
});
