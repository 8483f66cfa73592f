import type { EnvironmentDatabases } from "./environment-databases.js";
import type { CollectionSpec } from "./mongo.js";

/** Integrated accounts, in each environment's own database. */
export const accountsCollection: CollectionSpec = {
  name: "accounts",
  indexes: [
    { key: { status: 1, integration: 1 }, name: "status_integration" },
    { key: { tenantId: 1 }, name: "tenant" },
  ],
};

/** The account queries environments and integrations need before they may be deleted. */
export function createAccountCounter(databases: Pick<EnvironmentDatabases, "db">) {
  return {
    async countActive(environment: string, integration?: string): Promise<number> {
      const filter: Record<string, string> = { status: "active" };
      if (integration !== undefined) filter.integration = integration;
      return databases.db(environment).collection(accountsCollection.name).countDocuments(filter);
    },
  };
}
