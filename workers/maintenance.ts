import type { Logger } from "pino";

export interface MaintenanceDeps {
  /** Drops the databases of environments that have no record (orphan-sweeper.ts). */
  sweepOrphans(): Promise<unknown>;
  /** Removes day-old transition claims of the control database. */
  purgeControlClaims(): Promise<unknown>;
  /** Finishes deletes a process abandoned mid-way; resolves with the environments it finished. */
  finishAbandonedDeletes(): Promise<string[]>;
  everyMs: number;
  logger: Logger;
}

/**
 * The worker role's housekeeping, every `everyMs`: orphaned databases,
 * old control-database claims, abandoned deletes. Each task runs on its own;
 * one failing (MongoDB down) does not stop the others, and all run again next
 * time. Returns what stops the loop.
 */
export function startMaintenance(deps: MaintenanceDeps): () => void {
  const { logger } = deps;
  const timer = setInterval(() => {
    deps.sweepOrphans().catch((error: unknown) => logger.debug({ err: error }, "orphan sweep failed"));
    deps
      .purgeControlClaims()
      .catch((error: unknown) => logger.debug({ err: error }, "purging transition claims failed"));
    deps
      .finishAbandonedDeletes()
      .then((finished) => {
        if (finished.length > 0) logger.info({ environments: finished }, "finished abandoned deletes");
      })
      .catch((error: unknown) => logger.debug({ err: error }, "finishing abandoned deletes failed"));
  }, deps.everyMs);
  return () => clearInterval(timer);
}
