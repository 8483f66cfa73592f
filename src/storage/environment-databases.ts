import type { Db, MongoClient } from "mongodb";
import type { EnvironmentName } from "../domain/environments/environment-name.js";
import { type CollectionSpec, type DatabaseNames, ensureCollections } from "./mongo.js";

/**
 * Resolves an environment's database. Names reaching this point have passed
 * `parseEnvironmentName`; nothing else builds a database name.
 */
export interface EnvironmentDatabases {
  db(environment: EnvironmentName): Db;
  /** Creates the database with every collection and index the repositories declare. */
  provision(environment: EnvironmentName): Promise<void>;
  drop(environment: EnvironmentName): Promise<void>;
  /** Environments that have a database, whether or not they have a record. */
  listWithDatabase(): Promise<string[]>;
}

export function createEnvironmentDatabases(
  client: MongoClient,
  names: DatabaseNames,
  collections: readonly CollectionSpec[],
): EnvironmentDatabases {
  // `client.db()` builds a new handle, resolving every option, on each call (a visible share of a
  // cached call's CPU in bench:tokens). Handles hold no connection, so keeping them is safe; the
  // bound only keeps a process that sees many short-lived environments from growing.
  const handles = new Map<string, Db>();
  const maxHandles = 1_000;
  function db(environment: EnvironmentName): Db {
    let handle = handles.get(environment);
    if (!handle) {
      if (handles.size >= maxHandles) handles.clear();
      handle = client.db(names.environment(environment));
      handles.set(environment, handle);
    }
    return handle;
  }
  return {
    db,
    async provision(environment) {
      await ensureCollections(db(environment), collections);
    },
    async drop(environment) {
      await db(environment).dropDatabase();
      handles.delete(environment);
    },
    async listWithDatabase() {
      const result = await client.db("admin").admin().listDatabases({ nameOnly: true });
      return result.databases
        .map((d) => d.name)
        .filter((name) => name.startsWith(names.environmentPrefix))
        .map((name) => name.slice(names.environmentPrefix.length));
    },
  };
}
