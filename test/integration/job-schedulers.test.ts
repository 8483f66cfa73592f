import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../src/logger.js";
import { createJobSchedulers, type JobSchedule, upsertSchedule } from "../../src/queue/job-schedulers.js";
import { createQueueRegistry, type QueueRegistry } from "../../src/queue/queue-registry.js";
import { randomEnvironmentName, randomPrefix } from "../helpers/names.js";
import { backendUrls, redisKeys } from "../helpers/server.js";

const prefix = randomPrefix();
const schedules: JobSchedule[] = [
  { kind: "handshake", name: "sweep-connecting", everyMs: 30_000 },
  { kind: "rotation", name: "sweep-tokens", everyMs: 60_000 },
  { kind: "rotation", name: "sweep-accounts", everyMs: 60_000 },
];

let redis: Redis;
let queues: QueueRegistry;
let schedulers: ReturnType<typeof createJobSchedulers>;

beforeAll(() => {
  // The shared Redis, under this file's own prefix: only its own keys are read and removed.
  redis = new Redis(backendUrls().redisUrl, { maxRetriesPerRequest: 1 });
  queues = createQueueRegistry({ connection: redis, prefix, logger: createLogger("silent") });
  schedulers = createJobSchedulers({ connection: redis, queues });
});

afterAll(async () => {
  await queues.close();
  const keys = await redisKeys(redis, `${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

const refsOf = (environment: string) => schedules.map(({ kind, name }) => ({ environment, kind, name }));

describe("job schedulers in Redis (BullMQ 6.7's key layout)", () => {
  it("when a scheduler is created, then it runs at once, and upserting it again does not postpone its next run", async () => {
    const environment = randomEnvironmentName();
    const [sweep] = schedules;
    if (!sweep) throw new Error("no schedule");
    const queue = queues.queue(environment, sweep.kind);

    await upsertSchedule(queues, environment, sweep);
    const first = await queue.getJobScheduler(sweep.name);
    const firstRun = await queue.getJob(`repeat:${sweep.name}:${first?.next}`);
    expect(firstRun?.delay).toBe(0);
    expect(firstRun?.opts.removeOnComplete).toBe(true);

    // The queued run is replaced by one at the same time, not pushed `every` later.
    await upsertSchedule(queues, environment, sweep);
    const after = await queue.getJobScheduler(sweep.name);
    expect(after?.next).toBe(first?.next);
    expect(await queue.getJobState(`repeat:${sweep.name}:${first?.next}`)).toBe("waiting");
  });

  it("when schedulers exist, were deleted, or lost their next run, then inspect tells present, missing and stalled apart, and an upsert heals each", async () => {
    const environment = randomEnvironmentName();
    for (const schedule of schedules) await upsertSchedule(queues, environment, schedule);
    expect(await schedulers.inspect(refsOf(environment))).toEqual(["present", "present", "present"]);

    // A run's job lost on its own (its scheduler left pointing at it).
    const tokens = queues.queue(environment, "rotation");
    const next = (await tokens.getJobScheduler("sweep-tokens"))?.next;
    await redis.del(`${tokens.toKey("repeat")}:sweep-tokens:${next}`);
    // A whole scheduler lost.
    const handshake = queues.queue(environment, "handshake");
    await redis.zrem(handshake.toKey("repeat"), "sweep-connecting");
    await redis.del(`${handshake.toKey("repeat")}:sweep-connecting`);

    expect(await schedulers.inspect(refsOf(environment))).toEqual(["missing", "stalled", "present"]);
    await schedulers.upsert(environment, schedules[0] as JobSchedule);
    await schedulers.upsert(environment, schedules[1] as JobSchedule);
    expect(await schedulers.inspect(refsOf(environment))).toEqual(["present", "present", "present"]);
  });

  it("when 200 environments' schedulers are inspected, then it takes two round trips in all", async () => {
    const environments = Array.from({ length: 200 }, () => randomEnvironmentName());
    for (const environment of environments) {
      await Promise.all(schedules.map((schedule) => upsertSchedule(queues, environment, schedule)));
    }
    const refs = environments.flatMap(refsOf);
    const pipelines = vi.spyOn(redis, "pipeline");
    const started = performance.now();
    const states = await schedulers.inspect(refs);
    const ms = performance.now() - started;

    expect(states.every((state) => state === "present")).toBe(true);
    expect(pipelines).toHaveBeenCalledTimes(2);
    expect(pipelines.mock.calls.map(([commands]) => commands?.length)).toEqual([refs.length, refs.length]);
    pipelines.mockRestore();
    console.log(`inspected ${refs.length} schedulers of ${environments.length} environments in ${ms.toFixed(1)} ms`);
  });
});
