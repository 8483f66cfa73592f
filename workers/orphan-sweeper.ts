import type { Logger } from "pino";

export interface OrphanSweeperDeps {
  /** Environments that have a database. */
  listDatabases(): Promise<string[]>;
  /** Environments that have a record (any state). */
  listRecords(): Promise<string[]>;
  dropDatabase(environment: string): Promise<void>;
  logger: Logger;
}

/**
 * Drops databases of environments that no longer exist: a replica that had
 * not yet heard of a deletion may have written to the dropped database and so
 * re-created it. Databases are listed before records, and a record is written
 * before its database, so a database being created is never taken for an orphan.
 */
export function createOrphanSweeper(deps: OrphanSweeperDeps) {
  return async function sweep(): Promise<string[]> {
    const withDatabase = await deps.listDatabases();
    const records = new Set(await deps.listRecords());
    const orphans = withDatabase.filter((name) => !records.has(name));
    for (const name of orphans) {
      await deps.dropDatabase(name);
      deps.logger.warn({ environment: name }, "dropped the database of a deleted environment");
    }
    return orphans;
  };
}
