import { createHash } from "node:crypto";
import { type Db, type MongoClient, MongoServerError } from "mongodb";
import type { EnvironmentName } from "../domain/environments/environment-name.js";
import { type CollectionSpec, type DatabaseNames, ensureCollections } from "./mongo.js";

/**
 * Resolves an environment's database. Names reaching this point have passed
 * `parseEnvironmentName`; nothing else builds a database name.
 */
export interface EnvironmentDatabases {
  db(environment: EnvironmentName): Db;
  /**
   * Creates the database with every collection and index the repositories
   * declare, and remembers it was provisioned with them, for this incarnation.
   */
  provision(environment: EnvironmentName, incarnation: string): Promise<void>;
  /**
   * Provisions the environments whose database was not yet provisioned with
   * today's collections and indexes (another release, or another incarnation
   * of the name), and remembers each in the control database; returns how many
   * it provisioned. What start-up runs: checking every environment's
   * collections would cost 14 round trips each, 4,200 at 300 environments.
   */
  provisionStale(
    environments: readonly { name: EnvironmentName; incarnation: string }[],
    /** Every environment record's name (being created or deleted too): other names' markers are removed. */
    recorded: readonly string[],
  ): Promise<number>;
  drop(environment: EnvironmentName): Promise<void>;
  /** Environments that have a database, whether or not they have a record. */
  listWithDatabase(): Promise<string[]>;
}

/** Where start-up remembers which schema each environment's database was provisioned with (control database). */
export const provisionedCollection: CollectionSpec = { name: "provisioned", indexes: [] };

/** Environments provisioned at once at start-up. */
const provisionConcurrency = 8;

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
  // Changes whenever a release declares another collection or index.
  const schema = createHash("sha256").update(JSON.stringify(collections)).digest("hex").slice(0, 16);
  const markers = client
    .db(names.control)
    .collection<{ _id: string; schema: string; incarnation: string; at: Date }>(provisionedCollection.name);

  async function provision(environment: EnvironmentName, incarnation: string): Promise<void> {
    await ensureCollections(db(environment), collections);
    try {
      await markers.replaceOne({ _id: environment }, { schema, incarnation, at: new Date() }, { upsert: true });
    } catch (error) {
      // Two replicas upserting the same marker at once: the other one wrote it.
      if (!(error instanceof MongoServerError && error.code === 11000)) throw error;
    }
  }

  return {
    db,
    provision,
    async provisionStale(environments, recorded) {
      const marked = new Map((await markers.find().toArray()).map((m) => [m._id, m]));
      const stale = environments.filter((env) => {
        const marker = marked.get(env.name);
        return marker?.schema !== schema || marker.incarnation !== env.incarnation;
      });
      for (let i = 0; i < stale.length; i += provisionConcurrency) {
        await Promise.all(
          stale.slice(i, i + provisionConcurrency).map(({ name, incarnation }) => provision(name, incarnation)),
        );
      }
      // Deleted environments' markers (not those of one being created elsewhere: it has a record).
      const names = new Set(recorded);
      if ([...marked.keys()].some((name) => !names.has(name))) {
        await markers.deleteMany({ _id: { $nin: [...names] } });
      }
      return stale.length;
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
