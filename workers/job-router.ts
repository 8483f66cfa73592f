import { type Job, UnrecoverableError } from "bullmq";
import type { Logger } from "pino";
import type { QueueKind } from "../src/queue/queue-names.js";

/** Runs one job; `environment` comes from the queue, never from the payload. */
export type JobProcessor = (job: Job, environment: string) => Promise<unknown>;

/** Processors per queue kind and job name. */
export type ProcessorTable = Partial<Record<QueueKind, Record<string, JobProcessor>>>;

/**
 * The processor function of one environment's queue: dispatches by job name.
 * A job nobody processes fails for good instead of vanishing silently.
 */
export function createJobRouter(table: ProcessorTable, kind: QueueKind, environment: string, logger: Logger) {
  const processors = table[kind] ?? {};
  return async (job: Job): Promise<unknown> => {
    // Own properties only: a job named "toString" or "__proto__" is unknown too.
    const processor = Object.hasOwn(processors, job.name) ? processors[job.name] : undefined;
    if (!processor) {
      logger.error({ queue: job.queueName, job: job.name, id: job.id }, "no processor for job");
      throw new UnrecoverableError(`no processor for job "${job.name}" on the ${kind} queue`);
    }
    return processor(job, environment);
  };
}
