import type { Db, Filter } from "mongodb";
import { type Environment, type IncarnationSource, incarnationOf } from "../domain/environments/environments.js";
import type { DataKeyStore, EnvironmentSource, EnvironmentStore } from "../domain/environments/ports.js";
import type { PageRequest } from "../domain/paging.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";
import { compareAndSet } from "./versioned.js";

type EnvironmentDocument = Omit<Environment, "name"> & { _id: string };

export const environmentsCollection: CollectionSpec = {
  name: "environments",
  indexes: [{ key: { state: 1 }, name: "state" }],
};

/** Facts about the deployment as a whole, such as "the defaults were created". */
export const deploymentCollection: CollectionSpec = { name: "deployment", indexes: [] };

const bootstrapId = "bootstrap";

function toDomain({ _id, ...rest }: EnvironmentDocument): Environment {
  return { name: _id, ...rest, settings: rest.settings ?? {} };
}

function toDocument({ name, ...rest }: Environment): EnvironmentDocument {
  return { _id: name, ...rest };
}

/** Environment records in the control database, keyed by name. */
export type EnvironmentRepository = EnvironmentStore &
  EnvironmentSource &
  DataKeyStore &
  IncarnationSource & {
    /** Every record, whatever its state: for the workers, the orphan sweep and unfinished deletes. */
    listAll(): Promise<Environment[]>;
  };

export function createEnvironmentRepository(control: Db): EnvironmentRepository {
  const collection = control.collection<EnvironmentDocument>(environmentsCollection.name);
  const deployment = control.collection<{ _id: string; at: Date }>(deploymentCollection.name);
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
    async listAll() {
      return (await collection.find({}).toArray()).map(toDomain);
    },
    async isBootstrapped() {
      return (await deployment.countDocuments({ _id: bootstrapId }, { limit: 1 })) > 0;
    },
    async markBootstrapped(at) {
      try {
        await deployment.updateOne({ _id: bootstrapId }, { $setOnInsert: { at } }, { upsert: true });
      } catch (error) {
        // Two replicas upserting at once: the other one's insert won, which is the same fact.
        if (!isDuplicateKey(error)) throw error;
      }
    },
    async currentIncarnation(name) {
      const doc = await collection.findOne({ _id: name }, { projection: { state: 1, createTime: 1 } });
      return doc?.state === "active" ? incarnationOf(doc) : undefined;
    },
    async listActive() {
      const docs = await collection.find({ state: "active" }).toArray();
      return docs.map(toDomain);
    },
    async replace(environment, expectedVersion) {
      const { _id, ...fields } = toDocument(environment);
      const target = { id: _id, incarnation: String(environment.createTime.getTime()) };
      return compareAndSet(control, environmentsCollection.name, target, expectedVersion, fields);
    },
    async replaceDataKey(name, incarnation, expectedVersion, from, to) {
      // Only the data key moves, and only on the record of that incarnation still holding `from`.
      const match = [
        { path: "createTime", value: new Date(Number(incarnation)) },
        { path: "dataKey.wrapped", value: from.wrapped },
      ];
      const target = { id: name, incarnation };
      return compareAndSet(control, environmentsCollection.name, target, expectedVersion, { dataKey: to }, [], {
        match,
      });
    },
    async remove(name) {
      await collection.deleteOne({ _id: name });
    },
  };
}
