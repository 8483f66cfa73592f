import { type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { parseEnvironmentName } from "../../src/domain/environments/environment-name.js";
import { type QueueKind, queueName } from "../../src/queue/queue-names.js";
import { createWakeIndex } from "../../src/queue/wake-index.js";

/**
 * A test's hand on one environment's queue, as roomkey's producers use it: an
 * add also signals the wake index, so a worker starts for the job (workers
 * run only for queues with work).
 */
export function testQueue(redis: Redis, prefix: string, environment: string, kind: QueueKind) {
  const queue = new Queue(queueName(parseEnvironmentName(environment), kind), { connection: redis, prefix });
  const wakes = createWakeIndex({ redis, prefix });
  return Object.assign(queue, {
    /** Adds a job and wakes the queue's worker for it. */
    async addAndWake(name: string, data: unknown, options: JobsOptions = {}) {
      await wakes.at(queue.name, Date.now() + (options.delay ?? 0));
      return queue.add(name, data, options);
    },
  });
}
