import type { ServiceImpl } from "@connectrpc/connect";
import { auditPageSize } from "../../domain/audit/audit.js";
import type { AuditService } from "../../domain/audit/audit-service.js";
import type { Listing, PageTokens } from "../../domain/paging.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";
import { callContext } from "../call-context.js";
import { auditEventToProto, auditFilterFromProto, auditListingFilter } from "../mappers/audit-mapper.js";

export interface AuditHandlerDeps {
  audit: Pick<AuditService, "list">;
  pages: PageTokens;
}

/** ListAuditEvents: the environment's own log, newest first, filtered and paged. */
export function createAuditHandlers({
  audit,
  pages,
}: AuditHandlerDeps): Pick<ServiceImpl<typeof EnvironmentService>, "listAuditEvents"> {
  return {
    async listAuditEvents(req, ctx) {
      const { environment } = callContext(ctx);
      const filter = auditFilterFromProto(req);
      const listing: Listing = { environment, method: "ListAuditEvents", filter: auditListingFilter(filter) };
      // The page token's key; the audit log's own page sizes (up to 500, not the default 100).
      const { after } = await pages.parse(listing, req.pageToken, req.pageSize);
      const page = await audit.list(environment, filter, { after, size: auditPageSize(req.pageSize) });
      return {
        events: page.items.map(auditEventToProto),
        nextPageToken: await pages.next(listing, page.nextAfter),
      };
    },
  };
}
