import type { Db, Filter } from "mongodb";
import type { EnvironmentSource } from "../domain/environment-directory.js";
import type { EnvironmentStore } from "../domain/environment-service.js";
import type { Environment } from "../domain/environments.js";
import type { PageRequest } from "../domain/paging.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";

type EnvironmentDocument = Omit<Environment, "name"> & { _id: string };

export const environmentsCollection: CollectionSpec = {
  name: "environments",
  indexes: [{ key: { state: 1 }, name: "state" }],
};

function toDomain({ _id, ...rest }: EnvironmentDocument): Environment {
  return { name: _id, ...rest, settings: rest.settings ?? {} };
}

function toDocument({ name, ...rest }: Environment): EnvironmentDocument {
  return { _id: name, ...rest };
}

/** Environment records in the control database, keyed by name. */
export type EnvironmentRepository = EnvironmentStore &
  EnvironmentSource & {
    /** Every record's name and state, for the workers and the orphan sweep. */
    listStates(): Promise<{ name: string; state: Environment["state"] }[]>;
  };

export function createEnvironmentRepository(control: Db): EnvironmentRepository {
  const collection = control.collection<EnvironmentDocument>(environmentsCollection.name);
  return {
    async insert(environment) {
      try {
        await collection.insertOne(toDocument(environment));
        return true;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    },
    async get(name) {
      const doc = await collection.findOne({ _id: name });
      return doc ? toDomain(doc) : undefined;
    },
    async list(page: PageRequest) {
      const filter: Filter<EnvironmentDocument> = { state: "active" };
      if (page.after !== undefined) filter._id = { $gt: page.after };
      const docs = await collection
        .find(filter)
        .sort({ _id: 1 })
        .limit(page.size + 1)
        .toArray();
      return docs.map(toDomain);
    },
    async listStates() {
      const docs = await collection.find({}, { projection: { _id: 1, state: 1 } }).toArray();
      return docs.map((doc) => ({ name: doc._id, state: doc.state }));
    },
    async listActive() {
      const docs = await collection.find({ state: "active" }).toArray();
      return docs.map(toDomain);
    },
    async replace(environment, expectedVersion) {
      const result = await collection.replaceOne(
        { _id: environment.name, version: expectedVersion },
        toDocument(environment),
      );
      return result.matchedCount === 1;
    },
    async remove(name) {
      await collection.deleteOne({ _id: name });
    },
  };
}
