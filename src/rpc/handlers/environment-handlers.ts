import type { ServiceImpl } from "@connectrpc/connect";
import type { EnvironmentService as Environments } from "../../domain/environments/environment-service.js";
import type { IntegrationService } from "../../domain/integrations/integration-service.js";
import type { PageTokens } from "../../domain/paging.js";
import type { WebhookService } from "../../domain/webhooks/webhook-service.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";
import { callContext } from "../call-context.js";
import { changesFromUpdate, environmentToProto, settingsFromProto } from "../mappers/environment-mapper.js";
import { integrationFromProto, integrationToProto } from "../mappers/integration-mapper.js";
import { present } from "../mappers/present.js";
import { fromDuration } from "../mappers/time.js";
import {
  deliveryStatusFromProto,
  deliveryToProto,
  endpointChangesFromUpdate,
  endpointFromProto,
  endpointToProto,
} from "../mappers/webhook-mapper.js";
import type { createAuditHandlers } from "./audit-handlers.js";
import type { createMasterKeyHandlers } from "./master-key-handlers.js";
import type { createPromotionHandlers } from "./promotion-handlers.js";

export interface EnvironmentHandlerDeps {
  environments: Pick<Environments, "create" | "get" | "update" | "list" | "remove">;
  integrations: Pick<IntegrationService, "put" | "get" | "list" | "remove">;
  webhooks: WebhookService;
  pages: PageTokens;
  /** The methods that cross environments or read the audit log, each area's own handlers. */
  promotion: ReturnType<typeof createPromotionHandlers>;
  audit: ReturnType<typeof createAuditHandlers>;
  masterKeys: ReturnType<typeof createMasterKeyHandlers>;
}

/** EnvironmentService: maps requests to the domain and results back. */
export function createEnvironmentHandlers({
  environments,
  integrations,
  webhooks,
  pages,
  promotion,
  audit,
  masterKeys,
}: EnvironmentHandlerDeps): ServiceImpl<typeof EnvironmentService> {
  return {
    ...promotion,
    ...audit,
    ...masterKeys,
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
    async createWebhookEndpoint(req, ctx) {
      const input = endpointFromProto(present(req.endpoint, "endpoint"));
      const { endpoint, secret } = await webhooks.create(callContext(ctx).environment, input);
      return { endpoint: endpointToProto(endpoint), signingSecret: secret };
    },
    async getWebhookEndpoint(req, ctx) {
      return { endpoint: endpointToProto(await webhooks.get(callContext(ctx).environment, req.id)) };
    },
    async listWebhookEndpoints(req, ctx) {
      const { environment } = callContext(ctx);
      const listing = { environment, method: "ListWebhookEndpoints" };
      const page = await webhooks.list(environment, await pages.parse(listing, req.pageToken, req.pageSize));
      return {
        endpoints: page.items.map(endpointToProto),
        nextPageToken: await pages.next(listing, page.nextAfter),
      };
    },
    async updateWebhookEndpoint(req, ctx) {
      const endpoint = present(req.endpoint, "endpoint");
      const changes = endpointChangesFromUpdate(endpoint, present(req.updateMask, "update_mask"));
      return { endpoint: endpointToProto(await webhooks.update(callContext(ctx).environment, endpoint.id, changes)) };
    },
    async deleteWebhookEndpoint(req, ctx) {
      await webhooks.remove(callContext(ctx).environment, req.id);
      return {};
    },
    async rotateWebhookEndpointSecret(req, ctx) {
      const overlapMs = fromDuration(req.overlap);
      const { endpoint, secret } = await webhooks.rotateSecret(callContext(ctx).environment, req.id, overlapMs);
      return { endpoint: endpointToProto(endpoint), signingSecret: secret };
    },
    async listWebhookDeliveries(req, ctx) {
      const { environment } = callContext(ctx);
      const status = deliveryStatusFromProto(req.status);
      const filter = {
        ...(req.endpointId ? { endpointId: req.endpointId } : {}),
        ...(req.eventId ? { eventId: req.eventId } : {}),
        ...(status ? { status } : {}),
      };
      const listing = {
        environment,
        method: "ListWebhookDeliveries",
        filter: { endpoint: req.endpointId, event: req.eventId, status: status ?? "" },
      };
      const page = await webhooks.listDeliveries(
        environment,
        filter,
        await pages.parse(listing, req.pageToken, req.pageSize),
      );
      return {
        deliveries: page.items.map(deliveryToProto),
        nextPageToken: await pages.next(listing, page.nextAfter),
      };
    },
    async redeliverWebhookEvent(req, ctx) {
      const deliveries = await webhooks.redeliver(
        callContext(ctx).environment,
        req.eventId,
        req.endpointId === "" ? undefined : req.endpointId,
      );
      return { deliveries: deliveries.map(deliveryToProto) };
    },
  };
}
