import type { Db, MongoClient } from "mongodb";
import { type CollectionSpec, type DatabaseNames, ensureCollections } from "./mongo.js";

/**
 * Resolves an environment's database. Names reaching this point have passed
 * `parseEnvironmentName`; nothing else builds a database name.
 */
export interface EnvironmentDatabases {
  db(environment: string): Db;
  /** Creates the database with every collection and index the repositories declare. */
  provision(environment: string): Promise<void>;
  drop(environment: string): Promise<void>;
  /** Environments that have a database, whether or not they have a record. */
  listWithDatabase(): Promise<string[]>;
}

export function createEnvironmentDatabases(
  client: MongoClient,
  names: DatabaseNames,
  collections: readonly CollectionSpec[],
): EnvironmentDatabases {
  return {
    db: (environment) => client.db(names.environment(environment)),
    async provision(environment) {
      await ensureCollections(client.db(names.environment(environment)), collections);
    },
    async drop(environment) {
      await client.db(names.environment(environment)).dropDatabase();
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
