import type { ServiceImpl } from "@connectrpc/connect";
import type { AccountService as Accounts } from "../../domain/accounts/account-service.js";
import type { AccountEvent } from "../../domain/accounts/accounts.js";
import type { AccountFilter } from "../../domain/accounts/ports.js";
import { invalidField } from "../../domain/errors.js";
import type { Listing, PageTokens } from "../../domain/paging.js";
import type { AccountService } from "../../gen/roomkey/v1/account_service_pb.js";
import { callContext } from "../call-context.js";
import {
  accountEventToProto,
  accountStatusFromProto,
  accountToProto,
  credentialFromProto,
  credentialToProto,
} from "../mappers/account-mapper.js";
import { present } from "../mappers/present.js";
import { toTimestamp } from "../mappers/time.js";

export interface AccountHandlerDeps {
  accounts: Pick<
    Accounts,
    | "connect"
    | "get"
    | "list"
    | "updateLabels"
    | "disconnect"
    | "credentials"
    | "startOAuth"
    | "completeOAuth"
    | "refresh"
  >;
  watch(environment: string, signal: AbortSignal): AsyncIterable<AccountEvent>;
  pages: PageTokens;
}

/** AccountService: maps requests to the domain and results back. */
export function createAccountHandlers({
  accounts,
  watch,
  pages,
}: AccountHandlerDeps): ServiceImpl<typeof AccountService> {
  return {
    async connectAccount(req, ctx) {
      const result = await accounts.connect(callContext(ctx).environment, {
        integration: req.integration,
        tenantId: req.tenantId,
        labels: { ...req.labels },
        credential: credentialFromProto(req),
        idempotencyKey: req.idempotencyKey || undefined,
      });
      return { account: accountToProto(result.account) };
    },
    async startOAuthConnection(req, ctx) {
      const started = await accounts.startOAuth(callContext(ctx).environment, {
        integration: req.integration,
        tenantId: req.tenantId,
        labels: { ...req.labels },
        redirectUri: req.redirectUri,
        ...(req.accountId === "" ? {} : { accountId: req.accountId }),
      });
      return {
        authorizationUrl: started.authorizationUrl,
        state: started.state,
        stateExpireTime: toTimestamp(started.stateExpireTime),
      };
    },
    async completeOAuthConnection(req, ctx) {
      return {
        account: accountToProto(await accounts.completeOAuth(callContext(ctx).environment, req.state, req.code)),
      };
    },
    async getAccount(req, ctx) {
      return { account: accountToProto(await accounts.get(callContext(ctx).environment, req.id)) };
    },
    async listAccounts(req, ctx) {
      const filter: AccountFilter = {};
      if (req.integration !== "") filter.integration = req.integration;
      if (req.tenantId !== "") filter.tenantId = req.tenantId;
      const status = accountStatusFromProto(req.status);
      if (status !== undefined) filter.status = status;
      const { environment } = callContext(ctx);
      const listing: Listing = {
        environment,
        method: "ListAccounts",
        filter: { integration: req.integration, status: String(req.status), tenantId: req.tenantId },
      };
      const page = await accounts.list(environment, filter, await pages.parse(listing, req.pageToken, req.pageSize));
      return { accounts: page.items.map(accountToProto), nextPageToken: await pages.next(listing, page.nextAfter) };
    },
    async updateAccount(req, ctx) {
      const account = present(req.account, "account");
      const mask = present(req.updateMask, "update_mask");
      const paths = mask.paths.includes("*") ? ["labels"] : mask.paths;
      if (paths.length === 0) throw invalidField("update_mask", "must name at least one field");
      const other = paths.find((path) => path !== "labels");
      if (other !== undefined) throw invalidField("update_mask", `"${other}" cannot be changed; only labels can`);
      if (account.id === "") throw invalidField("account.id", "is required");
      return {
        account: accountToProto(
          await accounts.updateLabels(callContext(ctx).environment, account.id, { ...account.labels }),
        ),
      };
    },
    async deleteAccount(req, ctx) {
      return { account: accountToProto(await accounts.disconnect(callContext(ctx).environment, req.id)) };
    },
    async refreshAccountCredentials(req, ctx) {
      return { account: accountToProto(await accounts.refresh(callContext(ctx).environment, req.id)) };
    },
    async getAccountCredentials(req, ctx) {
      return credentialToProto(req.id, await accounts.credentials(callContext(ctx).environment, req.id));
    },
    async *watchAccounts(req, ctx) {
      const ids = new Set(req.accountIds);
      for await (const event of watch(callContext(ctx).environment, ctx.signal)) {
        const { account } = event;
        if (req.integration !== "" && account.integration !== req.integration) continue;
        if (req.tenantId !== "" && account.tenantId !== req.tenantId) continue;
        if (ids.size > 0 && !ids.has(account.id)) continue;
        yield accountEventToProto(event);
      }
    },
  };
}
