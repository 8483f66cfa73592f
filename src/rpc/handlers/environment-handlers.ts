import type { ServiceImpl } from "@connectrpc/connect";
import type { EnvironmentService as Environments } from "../../domain/environments/environment-service.js";
import type { IntegrationService } from "../../domain/integrations/integration-service.js";
import type { PageTokens } from "../../domain/paging.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";
import { callContext } from "../call-context.js";
import { changesFromUpdate, environmentToProto, settingsFromProto } from "../mappers/environment-mapper.js";
import { integrationFromProto, integrationToProto } from "../mappers/integration-mapper.js";
import { present } from "../mappers/present.js";

export interface EnvironmentHandlerDeps {
  environments: Pick<Environments, "create" | "get" | "update" | "list" | "remove">;
  integrations: Pick<IntegrationService, "put" | "get" | "list" | "remove">;
  pages: PageTokens;
}

/** EnvironmentService: maps requests to the domain and results back. */
export function createEnvironmentHandlers({
  environments,
  integrations,
  pages,
}: EnvironmentHandlerDeps): ServiceImpl<typeof EnvironmentService> {
  return {
    async createEnvironment(req, ctx) {
      const { environment } = callContext(ctx);
      const created = await environments.create(environment, {
        displayName: req.displayName,
        description: req.description,
        settings: settingsFromProto(req.settings),
      });
      return { environment: environmentToProto(created) };
    },
    async getEnvironment(_req, ctx) {
      return { environment: environmentToProto(await environments.get(callContext(ctx).environment)) };
    },
    async updateEnvironment(req, ctx) {
      const { environment } = callContext(ctx);
      const changes = changesFromUpdate(
        present(req.environment, "environment"),
        present(req.updateMask, "update_mask"),
      );
      return { environment: environmentToProto(await environments.update(environment, changes)) };
    },
    async listEnvironments(req, ctx) {
      // Every environment is listed, but the token still belongs to the environment of the call that got it.
      const listing = { environment: callContext(ctx).environment, method: "ListEnvironments" };
      const page = await environments.list(await pages.parse(listing, req.pageToken, req.pageSize));
      return {
        environments: page.items.map(environmentToProto),
        nextPageToken: await pages.next(listing, page.nextAfter),
      };
    },
    async deleteEnvironment(req, ctx) {
      await environments.remove(callContext(ctx).environment, req.force);
      return {};
    },
    async putIntegration(req, ctx) {
      const { environment } = callContext(ctx);
      const result = await integrations.put(environment, integrationFromProto(present(req.integration, "integration")));
      return { integration: integrationToProto(result.integration), created: result.created };
    },
    async getIntegration(req, ctx) {
      return { integration: integrationToProto(await integrations.get(callContext(ctx).environment, req.name)) };
    },
    async listIntegrations(req, ctx) {
      const { environment } = callContext(ctx);
      const listing = { environment, method: "ListIntegrations" };
      const page = await integrations.list(environment, await pages.parse(listing, req.pageToken, req.pageSize));
      return {
        integrations: page.items.map(integrationToProto),
        nextPageToken: await pages.next(listing, page.nextAfter),
      };
    },
    async deleteIntegration(req, ctx) {
      await integrations.remove(callContext(ctx).environment, req.name, req.force);
      return {};
    },
  };
}
