import type { EnvironmentName } from "../domain/environments/environment-name.js";
import { type QueueKind, queueName } from "./queue-names.js";
import type { RedisClient } from "./redis-client.js";

/** A queue that may have work from `at` on (epoch ms). */
export interface WakeEntry {
  queue: string;
  at: number;
}

/**
 * Removes a wake entry only if nobody moved it since it was read: a producer
 * that signalled meanwhile wrote another score, and its signal stays.
 */
const takeScript = `
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call("ZREM", KEYS[1], ARGV[1])
end
return 0`;

export type WakeIndex = ReturnType<typeof createWakeIndex>;

/**
 * Which queues have work, so that workers run only for those: one sorted set
 * of queue names scored by the time from which each may have a job to run.
 * Idle environments then cost no worker, no blocking connection and no Redis
 * command; the worker processes read the due entries in one command per poll,
 * however many environments exist.
 *
 * Producers signal before they add a job (a signal without its job only costs
 * a worker a short look); a worker that goes idle writes back the time of its
 * queue's next delayed job, and a stalled job's lock expiry, when it closes.
 * Every command names this one key, so it works on Redis Cluster too.
 */
export function createWakeIndex({ redis, prefix }: { redis: RedisClient; prefix: string }) {
  const key = `${prefix}:{fleet}:wake`;
  return {
    key,
    /** The queue has a job to run now. Always writes the score, so that a reader's `take` of an older one fails. */
    async now(environment: EnvironmentName, kind: QueueKind, at: number): Promise<void> {
      await redis.zadd(key, at, queueName(environment, kind));
    },
    /** The queue has a job from `at` on: only ever brings the entry forward. */
    async at(queue: string, at: number): Promise<void> {
      await redis.zadd(key, "LT", at, queue);
    },
    /** Entries due by `now`, soonest first. */
    async due(now: number, limit: number): Promise<WakeEntry[]> {
      const flat = await redis.zrangebyscore(key, "-inf", now, "WITHSCORES", "LIMIT", 0, limit);
      const entries: WakeEntry[] = [];
      // Member, score, member, score, ...
      let queue: string | undefined;
      for (const value of flat) {
        if (queue === undefined) queue = value;
        else {
          entries.push({ queue, at: Number(value) });
          queue = undefined;
        }
      }
      return entries;
    },
    /** Acknowledges an entry read by `due`, unless a producer signalled again since. */
    async take(entry: WakeEntry): Promise<boolean> {
      return (await redis.eval(takeScript, 1, key, entry.queue, String(entry.at))) === 1;
    },
    /** Forgets a deleted environment's queues. */
    async forget(queues: readonly string[]): Promise<void> {
      if (queues.length > 0) await redis.zrem(key, ...queues);
    },
  };
}
