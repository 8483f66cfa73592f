import {
  type Db,
  MongoClient,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from "mongodb";
import type { Config } from "../config.js";

/** The write and read concerns every operation of the process uses (docs/mongodb-at-scale.md). */
export type MongoConcerns = Pick<
  Config,
  | "ROOMKEY_MONGO_WRITE_CONCERN"
  | "ROOMKEY_MONGO_WRITE_TIMEOUT_MS"
  | "ROOMKEY_MONGO_JOURNAL"
  | "ROOMKEY_MONGO_READ_CONCERN"
>;

/**
 * One MongoClient per process; every repository borrows a Db from it, and with it the concerns: set once
 * here, never per operation, so no write can be weaker than the operator chose. FerretDB 1.24 accepts and
 * ignores both concerns (it has no replication).
 */
export function createMongoClient(url: string, appName: string, concerns: MongoConcerns): MongoClient {
  return new MongoClient(url, {
    appName,
    serverSelectionTimeoutMS: 5_000,
    connectTimeoutMS: 5_000,
    maxPoolSize: 50,
    // Optional fields left undefined are omitted, never stored as null.
    ignoreUndefined: true,
    writeConcern: {
      w: concerns.ROOMKEY_MONGO_WRITE_CONCERN,
      wtimeoutMS: concerns.ROOMKEY_MONGO_WRITE_TIMEOUT_MS,
      journal: concerns.ROOMKEY_MONGO_JOURNAL,
    },
    readConcern: { level: concerns.ROOMKEY_MONGO_READ_CONCERN },
    // Every read, the primary's: a version-checked write reads the version it moves, and a token cache
    // miss after a revocation must see the revocation; a lagging secondary serves neither.
    readPreference: "primary",
  });
}

/** The duplicate-key error, on MongoDB and FerretDB alike. */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}

/**
 * Whether an error says MongoDB could not be reached at all: the connection
 * failed or broke, no server could be selected, or the client never
 * connected. A server that answered with an error was reached.
 */
export function isMongoUnreachable(error: unknown): boolean {
  return (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoNotConnectedError ||
    error instanceof MongoTopologyClosedError
  );
}

/**
 * Whether the driver's own monitoring has given up on every server it knows:
 * each one's last description is `Unknown` (its heartbeat failed). A ping
 * then waits out server selection instead of failing, so a ping that times
 * out while this holds is as good as one refused. False until a server was
 * described at all.
 */
export function driverSeesNoServer(
  client: MongoClient,
  onChange: (noServer: boolean) => void = () => {},
): () => boolean {
  const types = new Map<string, string>();
  let noServer = false;
  const update = () => {
    const now = types.size > 0 && [...types.values()].every((type) => type === "Unknown");
    if (now !== noServer) {
      noServer = now;
      onChange(now);
    }
  };
  client.on("serverDescriptionChanged", (event) => {
    types.set(event.address, event.newDescription.type);
    update();
  });
  // A member removed from the replica set is closed, not described again: it must not count as reachable.
  client.on("serverClosed", (event) => {
    types.delete(event.address);
    update();
  });
  return () => noServer;
}

/** A ping of MongoDB, for health and the availability gate; "not connected" before the first connection. */
export function mongoPing(client: MongoClient, isConnected: () => boolean): () => Promise<unknown> {
  return async () => {
    if (!isConnected()) throw new MongoNotConnectedError("MongoDB is not connected yet");
    return client.db("admin").command({ ping: 1 });
  };
}

/** Database names: `<prefix>_control` and `<prefix>_env_<environment>`. */
export interface DatabaseNames {
  control: string;
  environmentPrefix: string;
  environment(name: string): string;
}

export function databaseNames(prefix: string): DatabaseNames {
  const environmentPrefix = `${prefix}_env_`;
  return {
    control: `${prefix}_control`,
    environmentPrefix,
    environment: (name) => `${environmentPrefix}${name}`,
  };
}

/** A collection a repository owns, with the indexes it relies on. */
export interface CollectionSpec {
  name: string;
  indexes: { key: Record<string, 1 | -1>; name: string; unique?: boolean }[];
}

/**
 * Creates the collections and indexes; awaited, never fire-and-forget, so a
 * repository never runs without the indexes it relies on. Idempotent.
 */
export async function ensureCollections(db: Db, specs: readonly CollectionSpec[]): Promise<void> {
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  for (const spec of specs) {
    let created = false;
    if (!existing.has(spec.name)) {
      try {
        await db.createCollection(spec.name);
        created = true;
      } catch (error) {
        // NamespaceExists: another replica created it first.
        if (!(error instanceof MongoServerError && error.code === 48)) throw error;
      }
    }
    // Only the missing indexes, one per command: FerretDB 1.24 drops the connection on a
    // createIndexes whose several indexes all exist already. A collection this call created
    // has none yet but `_id_`: asking would be a round trip per collection for nothing.
    const collection = db.collection(spec.name);
    const present = created
      ? new Set(["_id_"])
      : new Set((await collection.listIndexes().toArray()).map((index) => index.name as string));
    for (const index of spec.indexes) {
      if (!present.has(index.name)) await collection.createIndexes([index]);
    }
  }
}

/**
 * Connects, retrying until MongoDB answers or `signal` aborts. The driver only
 * reconnects by itself once a first connection succeeded: after a failed first
 * attempt every operation fails with "Topology is closed" until `connect()` is
 * called again, so start-up must not rely on implicit connection.
 */
export async function connectWithRetry(
  client: MongoClient,
  signal: AbortSignal,
  onRetry: (error: unknown, attempt: number) => void,
): Promise<boolean> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      await client.connect();
      return true;
    } catch (error) {
      onRetry(error, attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 250 * attempt)));
    }
  }
  return false;
}
