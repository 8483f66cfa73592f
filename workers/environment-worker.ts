import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { type QueueKind, queueName } from "../src/queue/queue-names.js";
import { createJobRouter, type ProcessorTable } from "./job-router.js";
import type { RunningWorker } from "./supervisor.js";

export interface WorkerFactoryDeps {
  /** Shared for commands; BullMQ duplicates it for each worker's blocking connection. Needs `maxRetriesPerRequest: null`. */
  connection: Redis;
  prefix: string;
  processors: ProcessorTable;
  concurrency: Record<QueueKind, number>;
  logger: Logger;
}

/** Starts the BullMQ worker of one environment's queue, with errors logged, never thrown away. */
export function createWorkerFactory(deps: WorkerFactoryDeps) {
  return (environment: string, kind: QueueKind): RunningWorker => {
    const name = queueName(environment, kind);
    const logger = deps.logger.child({ environment, queue: kind });
    const worker = new Worker(name, createJobRouter(deps.processors, kind, environment, logger), {
      connection: deps.connection,
      prefix: deps.prefix,
      concurrency: deps.concurrency[kind],
    });
    worker.on("error", (error) => logger.error({ err: error }, "worker error"));
    worker.on("failed", (job, error) =>
      logger.warn({ err: error, job: job?.name, id: job?.id, attempts: job?.attemptsMade }, "job failed"),
    );
    return worker;
  };
}
