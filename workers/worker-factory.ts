import { type Job, Worker } from "bullmq";
import type { Logger } from "pino";
import { parseEnvironmentName } from "../src/domain/environments/environment-name.js";
import type { IncarnationSource } from "../src/domain/environments/environments.js";
import { type QueueKind, queueName } from "../src/queue/queue-names.js";
import type { RedisClient } from "../src/queue/redis-client.js";
import { maxStalledRuns } from "../src/queue/retry-policy.js";
import { createJobRouter, type ProcessorTable } from "./job-router.js";
import type { JobActivity, RunningWorker } from "./supervisor.js";

export interface WorkerFactoryDeps {
  /** Shared for commands; BullMQ duplicates it for each worker's blocking connection. Needs `maxRetriesPerRequest: null`. */
  connection: RedisClient;
  prefix: string;
  processors: ProcessorTable;
  concurrency: Record<QueueKind, number>;
  /** Each job is checked against its environment's current incarnation (see createJobRouter). */
  incarnations: IncarnationSource;
  /** Delay before a job's next attempt, for jobs whose backoff type is not one of BullMQ's own. */
  backoffStrategy?: (attemptsMade: number, type: string | undefined, error: Error | undefined) => number;
  /** Failures that are the job's expected news (an endpoint that did not answer): logged at info, not warn. */
  expectedFailure?: (error: Error) => boolean;
  /**
   * How long a job's lock lasts without renewal: a worker that died (SIGKILL) has its active
   * jobs run again once their locks lapse and the stalled check (as often) finds them.
   */
  lockDurationMs: number;
  logger: Logger;
  /** Told how long each job took and how it ended (metrics); names not in `processors` are "unknown". */
  observeJob?: (kind: QueueKind, job: string, outcome: "completed" | "failed", seconds: number) => void;
  /** Told how each handshake ended: the account `active` or `failed` (metrics). */
  observeHandshake?: (environment: string, outcome: "active" | "failed") => void;
}

/** Seconds a finished job ran, from BullMQ's own times; undefined when it never started. */
function ranFor(job: { processedOn?: number; finishedOn?: number } | undefined): number | undefined {
  if (!job?.processedOn) return undefined;
  return Math.max(0, (job.finishedOn ?? Date.now()) - job.processedOn) / 1000;
}

/** Starts the BullMQ worker of one environment's queue, with errors logged, never thrown away. */
export function createWorkerFactory(deps: WorkerFactoryDeps) {
  return (environment: string, kind: QueueKind, activity?: JobActivity): RunningWorker => {
    const name = queueName(parseEnvironmentName(environment, "environment"), kind);
    const logger = deps.logger.child({ environment, queue: kind });
    const route = createJobRouter(deps.processors, kind, environment, logger, deps.incarnations);
    const processor = async (job: Job) => {
      activity?.started();
      try {
        return await route(job);
      } finally {
        activity?.finished();
      }
    };
    const worker = new Worker(name, processor, {
      connection: deps.connection,
      prefix: deps.prefix,
      concurrency: deps.concurrency[kind],
      lockDuration: deps.lockDurationMs,
      stalledInterval: deps.lockDurationMs,
      // A job whose worker died runs again up to this many times; past that it fails (the
      // connecting sweep then ends its account FAILED): a job that kills its worker cannot loop forever.
      maxStalledCount: maxStalledRuns,
      ...(deps.backoffStrategy ? { settings: { backoffStrategy: deps.backoffStrategy } } : {}),
    });
    worker.on("error", (error) => logger.error({ err: error }, "worker error"));
    worker.on("failed", (job, error) => {
      const details = { err: error, job: job?.name, id: job?.id, attempts: job?.attemptsMade };
      if (deps.expectedFailure?.(error)) logger.info(details, "job attempt failed; it will be tried again");
      else logger.warn(details, "job failed");
    });
    const { observeJob } = deps;
    if (observeJob) {
      const known = new Set(Object.keys(deps.processors[kind] ?? {}));
      const observe = (job: Job | undefined, outcome: "completed" | "failed") => {
        const seconds = ranFor(job);
        if (job && seconds !== undefined)
          observeJob(kind, known.has(job.name) ? job.name : "unknown", outcome, seconds);
      };
      worker.on("completed", (job) => {
        observe(job, "completed");
        // A handshake's job completes whatever the provider said: its result says how the account ended.
        const ended = (job.returnvalue as { outcome?: unknown } | null | undefined)?.outcome;
        if (kind === "handshake" && job.name === "connect" && (ended === "active" || ended === "failed")) {
          deps.observeHandshake?.(environment, ended);
        }
      });
      worker.on("failed", (job) => observe(job, "failed"));
    }
    return worker;
  };
}
