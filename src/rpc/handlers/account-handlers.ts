import type { ServiceImpl } from "@connectrpc/connect";
import type { AccountService as Accounts } from "../../domain/accounts/account-service.js";
import type { AccountEvent, EndUser } from "../../domain/accounts/accounts.js";
import type { AccountFilter } from "../../domain/accounts/ports.js";
import type { ConnectSessionService as ConnectSessions } from "../../domain/connect-sessions/connect-session-service.js";
import type { SessionFacts } from "../../domain/connect-sessions/connect-sessions.js";
import { invalidField } from "../../domain/errors.js";
import type { Listing, PageTokens } from "../../domain/paging.js";
import type { AccountService } from "../../gen/roomkey/v1/account_service_pb.js";
import { type CallContext, callContext } from "../call-context.js";
import {
  accountEventToProto,
  accountStatusFromProto,
  accountToProto,
  credentialFromProto,
  credentialToProto,
} from "../mappers/account-mapper.js";
import {
  connectIntegrationToProto,
  connectSessionToProto,
  endUserFromProto,
} from "../mappers/connect-session-mapper.js";
import { present } from "../mappers/present.js";
import { fromDuration, toTimestamp } from "../mappers/time.js";

export interface AccountHandlerDeps {
  accounts: Pick<
    Accounts,
    "connect" | "get" | "list" | "update" | "disconnect" | "credentials" | "startOAuth" | "completeOAuth" | "refresh"
  >;
  sessions: Pick<
    ConnectSessions,
    "create" | "getFor" | "revoke" | "connect" | "startOAuth" | "completeOAuth" | "getAccount"
  >;
  watch(environment: string, signal: AbortSignal): AsyncIterable<AccountEvent>;
  pages: PageTokens;
}

/** The fields UpdateAccount may name, and what each changes. */
const updatablePaths = new Set(["labels", "end_user", "end_user.display_name", "end_user.email", "end_user.tags"]);

/** The connect session a call was made with, if it was. */
function sessionOf(call: CallContext): SessionFacts | undefined {
  return call.principal.kind === "session" ? call.principal.session : undefined;
}

/**
 * AccountService: maps requests to the domain and results back. A call made
 * with a connect session goes to the session's side of the domain, which
 * holds it to its own integrations, end user and account.
 */
export function createAccountHandlers({
  accounts,
  sessions,
  watch,
  pages,
}: AccountHandlerDeps): ServiceImpl<typeof AccountService> {
  return {
    async connectAccount(req, ctx) {
      const call = callContext(ctx);
      const session = sessionOf(call);
      const credential = credentialFromProto(req);
      const accountId = req.accountId === "" ? undefined : req.accountId;
      if (session) {
        const account = await sessions.connect(call.environment, session, {
          integration: req.integration,
          credential,
          ...(accountId ? { accountId } : {}),
        });
        return { account: accountToProto(account) };
      }
      const endUser = endUserFromProto(req.endUser);
      const result = await accounts.connect(call.environment, {
        integration: req.integration,
        tenantId: req.tenantId,
        labels: { ...req.labels },
        credential,
        idempotencyKey: req.idempotencyKey || undefined,
        ...(endUser ? { endUser } : {}),
        ...(accountId ? { accountId } : {}),
      });
      return { account: accountToProto(result.account) };
    },
    async startOAuthConnection(req, ctx) {
      const call = callContext(ctx);
      const session = sessionOf(call);
      const accountId = req.accountId === "" ? undefined : req.accountId;
      const endUser = endUserFromProto(req.endUser);
      const started = session
        ? await sessions.startOAuth(call.environment, session, {
            integration: req.integration,
            redirectUri: req.redirectUri,
            ...(accountId ? { accountId } : {}),
          })
        : await accounts.startOAuth(call.environment, {
            integration: req.integration,
            tenantId: req.tenantId,
            labels: { ...req.labels },
            redirectUri: req.redirectUri,
            ...(accountId ? { accountId } : {}),
            ...(endUser ? { endUser } : {}),
          });
      return {
        authorizationUrl: started.authorizationUrl,
        state: started.state,
        stateExpireTime: toTimestamp(started.stateExpireTime),
      };
    },
    async completeOAuthConnection(req, ctx) {
      const call = callContext(ctx);
      const session = sessionOf(call);
      const account = session
        ? await sessions.completeOAuth(call.environment, session, {
            state: req.state,
            code: req.code,
            ...(req.iss ? { iss: req.iss } : {}),
          })
        : await accounts.completeOAuth(call.environment, req.state, req.code, req.iss ? { iss: req.iss } : {});
      return { account: accountToProto(account) };
    },
    async getAccount(req, ctx) {
      const call = callContext(ctx);
      const session = sessionOf(call);
      const account = session
        ? await sessions.getAccount(call.environment, session, req.id)
        : await accounts.get(call.environment, req.id);
      return { account: accountToProto(account) };
    },
    async listAccounts(req, ctx) {
      const filter: AccountFilter = {};
      if (req.integration !== "") filter.integration = req.integration;
      if (req.tenantId !== "") filter.tenantId = req.tenantId;
      if (req.endUserId !== "") filter.endUserId = req.endUserId;
      if (req.endUserTag !== "") filter.endUserTag = req.endUserTag;
      const status = accountStatusFromProto(req.status);
      if (status !== undefined) filter.status = status;
      const { environment } = callContext(ctx);
      const listing: Listing = {
        environment,
        method: "ListAccounts",
        filter: {
          integration: req.integration,
          status: String(req.status),
          tenantId: req.tenantId,
          endUserId: req.endUserId,
          endUserTag: req.endUserTag,
        },
      };
      const page = await accounts.list(environment, filter, await pages.parse(listing, req.pageToken, req.pageSize));
      return { accounts: page.items.map(accountToProto), nextPageToken: await pages.next(listing, page.nextAfter) };
    },
    async updateAccount(req, ctx) {
      const account = present(req.account, "account");
      const mask = present(req.updateMask, "update_mask");
      const paths = mask.paths.includes("*") ? ["labels", "end_user"] : mask.paths;
      if (paths.length === 0) throw invalidField("update_mask", "must name at least one field");
      const other = paths.find((path) => !updatablePaths.has(path));
      if (other !== undefined) {
        throw invalidField(
          "update_mask",
          `"${other}" cannot be changed; only labels and end_user's display fields can`,
        );
      }
      if (account.id === "") throw invalidField("account.id", "is required");
      const given = account.endUser;
      const whole = paths.includes("end_user");
      const endUser: Partial<EndUser> = {};
      if (whole || paths.includes("end_user.display_name")) endUser.displayName = given?.displayName ?? "";
      if (whole || paths.includes("end_user.email")) endUser.email = given?.email ?? "";
      if (whole || paths.includes("end_user.tags")) endUser.tags = [...(given?.tags ?? [])];
      if (given?.id) endUser.id = given.id;
      const touchesEndUser = paths.some((path) => path.startsWith("end_user"));
      return {
        account: accountToProto(
          await accounts.update(callContext(ctx).environment, account.id, {
            ...(paths.includes("labels") ? { labels: { ...account.labels } } : {}),
            ...(touchesEndUser ? { endUser } : {}),
          }),
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
    async createConnectSession(req, ctx) {
      const call = callContext(ctx);
      const endUser = endUserFromProto(present(req.endUser, "end_user"));
      const lifetimeMs = fromDuration(req.lifetime);
      const created = await sessions.create(call.environment, {
        endUser,
        tenantId: req.tenantId,
        integrations: [...req.integrations],
        ...(req.accountId === "" ? {} : { accountId: req.accountId }),
        ...(lifetimeMs === undefined ? {} : { lifetimeMs }),
        allowedOrigins: [...req.allowedOrigins],
        ...(req.returnUrl === "" ? {} : { returnUrl: req.returnUrl }),
        labels: { ...req.labels },
        createdBy: call.principal.kind === "token" ? call.principal.tokenId : "admin",
      });
      return {
        session: connectSessionToProto(created.session),
        secret: created.secret,
        connectUrl: created.connectUrl,
      };
    },
    async getConnectSession(req, ctx) {
      const call = callContext(ctx);
      const found = await sessions.getFor(call.environment, sessionOf(call), req.id);
      return {
        session: connectSessionToProto(found.session),
        integrations: found.integrations.map(connectIntegrationToProto),
      };
    },
    async revokeConnectSession(req, ctx) {
      return { session: connectSessionToProto(await sessions.revoke(callContext(ctx).environment, req.id)) };
    },
    async *watchAccounts(req, ctx) {
      const ids = new Set(req.accountIds);
      for await (const event of watch(callContext(ctx).environment, ctx.signal)) {
        const { account } = event;
        if (req.integration !== "" && account.integration !== req.integration) continue;
        if (req.tenantId !== "" && account.tenantId !== req.tenantId) continue;
        if (req.endUserId !== "" && account.endUser?.id !== req.endUserId) continue;
        if (ids.size > 0 && !ids.has(account.id)) continue;
        yield accountEventToProto(event);
      }
    },
  };
}
