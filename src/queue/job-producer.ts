import type { JobsOptions } from "bullmq";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import type { JobData, JobName, QueueKind } from "./queue-names.js";
import type { QueueRegistry } from "./queue-registry.js";
import type { WakeIndex } from "./wake-index.js";

export type JobProducer = ReturnType<typeof createJobProducer>;

/**
 * Typed enqueueing onto an environment's queues; a job that was not added is
 * an error, never silence. Each add tells the wake index when the queue has
 * work (src/queue/wake-index.ts), so that a worker runs for it, twice: before
 * the job exists (a crash after the add still left a signal) and after (a
 * worker that took the first signal may have gone idle and looked at its
 * queue before the add landed, a slow one or a large bulk add).
 */
export function createJobProducer(
  queues: Pick<QueueRegistry, "queue">,
  wakes: Pick<WakeIndex, "now" | "at">,
  now: () => number = Date.now,
) {
  async function wake(environment: string, kind: QueueKind, delays: readonly (number | undefined)[]): Promise<void> {
    const soonest = Math.min(...delays.map((delay) => Math.max(0, delay ?? 0)));
    const at = now();
    if (soonest === 0) await wakes.now(parseEnvironmentName(environment, "environment"), kind, at);
    else await wakes.at(queues.queue(environment, kind).name, at + soonest);
  }

  return {
    /**
     * Wakes a queue's worker without adding a job: for the sweeps, which find
     * a job waiting longer than it should (its signal lost) and have it run.
     */
    signal: (environment: string, kind: QueueKind) => wake(environment, kind, [0]),

    async add<K extends QueueKind, N extends JobName<K>>(
      environment: string,
      kind: K,
      name: N,
      data: JobData<K, N>,
      options: JobsOptions = {},
    ): Promise<string> {
      await wake(environment, kind, [options.delay]);
      const job = await queues.queue(environment, kind).add(name, data, options);
      if (!job.id) throw new Error(`the ${kind} queue of ${environment} did not accept job ${name}`);
      await wake(environment, kind, [options.delay]);
      return job.id;
    },

    /** Adds jobs of one name in one round trip; a job whose id is already queued is left as it is. */
    async addBulk<K extends QueueKind, N extends JobName<K>>(
      environment: string,
      kind: K,
      name: N,
      jobs: readonly { data: JobData<K, N>; options: JobsOptions }[],
    ): Promise<void> {
      if (jobs.length === 0) return;
      await wake(
        environment,
        kind,
        jobs.map((job) => job.options.delay),
      );
      const added = await queues
        .queue(environment, kind)
        .addBulk(jobs.map((job) => ({ name, data: job.data, opts: job.options })));
      if (added.some((job) => !job.id))
        throw new Error(`the ${kind} queue of ${environment} did not accept ${name} jobs`);
      await wake(
        environment,
        kind,
        jobs.map((job) => job.options.delay),
      );
    },
  };
}
