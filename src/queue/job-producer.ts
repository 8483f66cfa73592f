import type { JobsOptions } from "bullmq";
import type { JobData, JobName, QueueKind } from "./queue-names.js";
import type { QueueRegistry } from "./queue-registry.js";

export type JobProducer = ReturnType<typeof createJobProducer>;

/** Typed enqueueing onto an environment's queues; a job that was not added is an error, never silence. */
export function createJobProducer(queues: Pick<QueueRegistry, "queue">) {
  return {
    async add<K extends QueueKind, N extends JobName<K>>(
      environment: string,
      kind: K,
      name: N,
      data: JobData<K, N>,
      options: JobsOptions = {},
    ): Promise<string> {
      const job = await queues.queue(environment, kind).add(name, data, options);
      if (!job.id) throw new Error(`the ${kind} queue of ${environment} did not accept job ${name}`);
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
      const added = await queues
        .queue(environment, kind)
        .addBulk(jobs.map((job) => ({ name, data: job.data, opts: job.options })));
      if (added.some((job) => !job.id))
        throw new Error(`the ${kind} queue of ${environment} did not accept ${name} jobs`);
    },
  };
}
