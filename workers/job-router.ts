import { type Job, UnrecoverableError } from "bullmq";
import type { Logger } from "pino";
import { EnvironmentReplacedError, type IncarnationSource } from "../src/domain/environments/environments.js";
import type { QueueKind } from "../src/queue/queue-names.js";
import { incarnationOf } from "./job-payloads.js";

/**
 * Runs one job; `environment` comes from the queue, never from the payload.
 * `incarnation` is the environment's current one, which the job was made for
 * (or, for a job that does not say, is taken to be for): everything the
 * processor writes is bound to it.
 */
export type JobProcessor = (job: Job, environment: string, incarnation: string) => Promise<unknown>;

/** Processors per queue kind and job name. */
export type ProcessorTable = Partial<Record<QueueKind, Record<string, JobProcessor>>>;

/** What a job that belongs to no current incarnation completes with: it did nothing. */
export interface DiscardedJob {
  discarded: string;
}

/**
 * The processor function of one environment's queue: dispatches by job name.
 * A job nobody processes fails for good instead of vanishing silently.
 *
 * Queue names outlive an environment (a name deleted and created again gets
 * the same queues), so each job is checked against the environment's record
 * first: a job made for another incarnation, or one that comes while the
 * environment is gone or being deleted, completes without running, with a log
 * line. A job that learns mid-way that its incarnation was replaced ends the
 * same way (what it would have written was refused).
 */
export function createJobRouter(
  table: ProcessorTable,
  kind: QueueKind,
  environment: string,
  logger: Logger,
  incarnations: IncarnationSource,
) {
  const processors = table[kind] ?? {};
  return async (job: Job): Promise<unknown> => {
    // Own properties only: a job named "toString" or "__proto__" is unknown too.
    const processor = Object.hasOwn(processors, job.name) ? processors[job.name] : undefined;
    if (!processor) {
      logger.error({ queue: job.queueName, job: job.name, id: job.id }, "no processor for job");
      throw new UnrecoverableError(`no processor for job "${job.name}" on the ${kind} queue`);
    }
    const claimed = incarnationOf(job);
    const current = await incarnations.currentIncarnation(environment);
    if (current === undefined || (claimed !== undefined && claimed !== current)) {
      const why =
        current === undefined ? "the environment is deleted or being deleted" : "made for another incarnation";
      logger.warn(
        { queue: job.queueName, job: job.name, id: job.id, incarnation: claimed, current, why },
        "job discarded: its environment is not the one it was made for",
      );
      return { discarded: why } satisfies DiscardedJob;
    }
    try {
      return await processor(job, environment, current);
    } catch (error) {
      if (!(error instanceof EnvironmentReplacedError)) throw error;
      logger.warn(
        { queue: job.queueName, job: job.name, id: job.id, incarnation: current },
        "job discarded: its environment was replaced while it ran; it wrote nothing into the new one",
      );
      return { discarded: "the environment was replaced while it ran" } satisfies DiscardedJob;
    }
  };
}
