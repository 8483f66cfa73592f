import { Queue } from "bullmq";
import type { Logger } from "pino";
import { withTimeout } from "../async.js";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import { RoomkeyError } from "../domain/errors.js";
import { type QueueKind, queueKinds, queueName } from "./queue-names.js";
import type { RedisClient } from "./redis-client.js";
import type { WakeIndex } from "./wake-index.js";

export interface QueueRegistryDeps {
  connection: RedisClient;
  prefix: string;
  /** A removed environment's queues leave the wake index too. */
  wakes: Pick<WakeIndex, "forget">;
  logger: Logger;
  /** How long removing one queue may take before it counts as Redis being unavailable. */
  removeTimeoutMs?: number;
}

export type QueueRegistry = ReturnType<typeof createQueueRegistry>;

function redisUnavailable(): RoomkeyError {
  return new RoomkeyError("unavailable", "BACKEND_UNAVAILABLE", "Redis is unavailable; retry later");
}

/**
 * Producers for every environment's queues: one Queue object per queue per
 * process, sharing one Redis connection, created on first use.
 */
export function createQueueRegistry({
  connection,
  prefix,
  wakes,
  logger,
  removeTimeoutMs = 15_000,
}: QueueRegistryDeps) {
  const queues = new Map<string, Queue>();

  function queue(environment: string, kind: QueueKind): Queue {
    const name = queueName(parseEnvironmentName(environment, "environment"), kind);
    let found = queues.get(name);
    if (!found) {
      found = new Queue(name, { connection, prefix });
      found.on("error", (error) => logger.warn({ err: error, queue: name }, "queue error"));
      queues.set(name, found);
    }
    return found;
  }

  /** Fails fast instead of waiting for a Redis that is down (BullMQ would wait for it). */
  function assertReachable(): void {
    if (connection.status !== "ready") throw redisUnavailable();
  }

  /** Removes the environment's queues and every job on them, even active ones. */
  async function removeEnvironment(environment: string): Promise<void> {
    assertReachable();
    const names = queueKinds.map((kind) => queueName(parseEnvironmentName(environment, "environment"), kind));
    await withTimeout(wakes.forget(names), removeTimeoutMs, redisUnavailable);
    for (const kind of queueKinds) {
      const q = queue(environment, kind);
      queues.delete(q.name);
      try {
        await withTimeout(q.obliterate({ force: true }), removeTimeoutMs, redisUnavailable);
      } finally {
        await withTimeout(q.close(), removeTimeoutMs, redisUnavailable).catch((error: unknown) =>
          logger.warn({ err: error, queue: q.name }, "could not close a removed queue"),
        );
      }
    }
  }

  async function close(): Promise<void> {
    const all = [...queues.values()];
    queues.clear();
    await Promise.all(all.map((q) => q.close()));
  }

  return { queue, assertReachable, removeEnvironment, close };
}
