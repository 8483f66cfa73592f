import { parseEnvironmentName } from "../domain/environments/environment-name.js";
import type { Integration } from "../domain/integrations/integrations.js";
import type { IntegrationStore } from "../domain/integrations/ports.js";
import type { EnvironmentDatabases } from "./environment-databases.js";
import { type CollectionSpec, isDuplicateKey } from "./mongo.js";
import { compareAndSet } from "./versioned.js";

type IntegrationDocument = Omit<Integration, "name"> & { _id: string };

export const integrationsCollection: CollectionSpec = { name: "integrations", indexes: [] };

function toDomain({ _id, ...rest }: IntegrationDocument): Integration {
  return { name: _id, ...rest };
}

function toDocument({ name, ...rest }: Integration): IntegrationDocument {
  return { _id: name, ...rest };
}

/** Integrations in each environment's own database, keyed by name. */
export function createIntegrationRepository(databases: Pick<EnvironmentDatabases, "db">): IntegrationStore {
  const collection = (environment: string) =>
    databases
      .db(parseEnvironmentName(environment, "environment"))
      .collection<IntegrationDocument>(integrationsCollection.name);
  return {
    async get(environment, name) {
      const doc = await collection(environment).findOne({ _id: name });
      return doc ? toDomain(doc) : undefined;
    },
    async insert(environment, integration) {
      try {
        await collection(environment).insertOne(toDocument(integration));
        return true;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    },
    async replace(environment, integration, expectedVersion) {
      const { _id, ...fields } = toDocument(integration);
      const unset = "oauth2" in fields ? [] : ["oauth2"];
      const target = { id: _id, incarnation: String(integration.createTime.getTime()) };
      return compareAndSet(
        databases.db(parseEnvironmentName(environment, "environment")),
        integrationsCollection.name,
        target,
        expectedVersion,
        fields,
        unset,
      );
    },
    async list(environment, page) {
      const filter = page.after === undefined ? {} : { _id: { $gt: page.after } };
      const docs = await collection(environment)
        .find(filter)
        .sort({ _id: 1 })
        .limit(page.size + 1)
        .toArray();
      return docs.map(toDomain);
    },
    async remove(environment, name) {
      const result = await collection(environment).deleteOne({ _id: name });
      return result.deletedCount === 1;
    },
  };
}
