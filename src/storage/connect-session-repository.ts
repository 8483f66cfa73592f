import type { Collection } from "mongodb";
import type { ConnectSession } from "../domain/connect-sessions/connect-sessions.js";
import type { ConnectSessionStore } from "../domain/connect-sessions/ports.js";
import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import type { CollectionSpec } from "./mongo.js";
import { compareAndSet } from "./versioned.js";

type SessionDocument = Omit<ConnectSession, "id"> & { _id: string };

/** Connect sessions, in each environment's own database; looked up by the hash of their secret. */
export const connectSessionsCollection: CollectionSpec = {
  name: "connect_sessions",
  indexes: [
    { key: { hash: 1 }, name: "hash", unique: true },
    { key: { expireTime: 1 }, name: "expire_time" },
  ],
};

function toDomain({ _id, ...rest }: SessionDocument): ConnectSession {
  return { id: _id, ...rest };
}

export function createConnectSessionRepository(databases: Pick<EnvironmentDatabases, "db">) {
  const db = (environment: string) => databases.db(parseEnvironmentName(environment, "environment"));
  const sessions = (environment: string): Collection<SessionDocument> =>
    db(environment).collection<SessionDocument>(connectSessionsCollection.name);

  const store: ConnectSessionStore = {
    async insert(environment, session) {
      const { id, ...rest } = session;
      await sessions(environment).insertOne({ _id: id, ...rest });
    },
    async get(environment, id) {
      const doc = await sessions(environment).findOne({ _id: id });
      return doc ? toDomain(doc) : undefined;
    },
    async findByHash(environment, hash) {
      const doc = await sessions(environment).findOne({ hash });
      return doc ? toDomain(doc) : undefined;
    },
    async update(environment, session, changes) {
      const { id: _id, version: _version, ...set } = changes;
      const won = await compareAndSet(
        db(environment),
        connectSessionsCollection.name,
        { id: session.id, incarnation: "" },
        session.version,
        set,
      );
      return won ? { ...session, ...set, version: session.version + 1 } : undefined;
    },
  };
  return {
    ...store,
    /** Removes sessions that ended (expired) before `before`. */
    async purgeEnded(environment: string, before: Date): Promise<number> {
      return (await sessions(environment).deleteMany({ expireTime: { $lt: before } })).deletedCount;
    },
  };
}
