import type { ServiceImpl } from "@connectrpc/connect";
import {
  diffPageSize,
  type IntegrationPromotionService,
  parseSourceEnvironment,
} from "../../domain/integrations/integration-promotion.js";
import type { PageTokens } from "../../domain/paging.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";
import { callContext } from "../call-context.js";
import { integrationDiffToProto, promotionToProto } from "../mappers/promotion-mapper.js";

export interface PromotionHandlerDeps {
  promotion: IntegrationPromotionService;
  pages: PageTokens;
}

/** DiffIntegrations and PromoteIntegrations (admin key only: the edge's method policy). */
export function createPromotionHandlers({
  promotion,
  pages,
}: PromotionHandlerDeps): Pick<ServiceImpl<typeof EnvironmentService>, "diffIntegrations" | "promoteIntegrations"> {
  return {
    async diffIntegrations(req, ctx) {
      const { environment } = callContext(ctx);
      // The source's name is checked before the page token, which is bound to it.
      parseSourceEnvironment(req.fromEnvironment, environment);
      const listing = {
        environment,
        method: "DiffIntegrations",
        filter: { from_environment: req.fromEnvironment, include_same: String(req.includeSame) },
      };
      const { after } = await pages.parse(listing, req.pageToken, req.pageSize);
      const page = await promotion.diff(environment, {
        from: req.fromEnvironment,
        includeSame: req.includeSame,
        page: { after, size: diffPageSize(req.pageSize) },
      });
      return {
        integrations: page.items.map(integrationDiffToProto),
        nextPageToken: await pages.next(listing, page.nextAfter),
      };
    },
    async promoteIntegrations(req, ctx) {
      const result = await promotion.promote(callContext(ctx).environment, {
        from: req.fromEnvironment,
        names: req.names,
        all: req.all,
        dryRun: req.dryRun,
        keep: req.keepTargetFields?.paths ?? [],
      });
      return { promotions: result.promotions.map(promotionToProto), dryRun: result.dryRun };
    },
  };
}
