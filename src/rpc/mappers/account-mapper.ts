import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  AccountEvent,
  AccountView,
  Credential,
  AccountStatus as DomainAccountStatus,
  KeyCredential,
} from "../../domain/accounts/accounts.js";
import { invalidField } from "../../domain/errors.js";
import {
  type AccountSchema,
  AccountStatus,
  type ConnectAccountRequest,
  type GetAccountCredentialsResponseSchema,
  UpstreamRevocationStatus,
  type WatchAccountsResponseSchema,
} from "../../gen/roomkey/v1/account_service_pb.js";
import { endUserToProto } from "./connect-session-mapper.js";
import { authTypeToProto } from "./integration-mapper.js";
import { toTimestamp } from "./time.js";

export const accountStatuses: Readonly<Record<DomainAccountStatus, AccountStatus>> = {
  connecting: AccountStatus.CONNECTING,
  active: AccountStatus.ACTIVE,
  failed: AccountStatus.FAILED,
  needs_reauth: AccountStatus.NEEDS_REAUTH,
  disconnected: AccountStatus.DISCONNECTED,
};

const statusesBack = new Map<AccountStatus, DomainAccountStatus>(
  Object.entries(accountStatuses).map(([domain, proto]) => [proto, domain as DomainAccountStatus]),
);

/** A ListAccounts status filter; UNSPECIFIED means any status. */
export function accountStatusFromProto(status: AccountStatus): DomainAccountStatus | undefined {
  return statusesBack.get(status);
}

export function accountToProto(account: AccountView): MessageInitShape<typeof AccountSchema> {
  return {
    id: account.id,
    integration: account.integration,
    tenantId: account.tenantId,
    labels: account.labels,
    status: accountStatuses[account.status],
    statusReason: account.statusReason,
    authType: authTypeToProto(account.authType),
    remoteId: account.remoteId ?? "",
    remoteName: account.remoteName ?? "",
    createTime: toTimestamp(account.createTime),
    updateTime: toTimestamp(account.updateTime),
    credentialsExpireTime: toTimestamp(account.credentialsExpireTime),
    lastRefreshTime: toTimestamp(account.lastRefreshTime),
    ...(account.endUser ? { endUser: endUserToProto(account.endUser) } : {}),
    reauthorizationFailed: account.reauthorizationFailed === true,
    ...(account.upstreamRevocation
      ? {
          upstreamRevocation: {
            status: {
              pending: UpstreamRevocationStatus.PENDING,
              done: UpstreamRevocationStatus.DONE,
              failed: UpstreamRevocationStatus.FAILED,
            }[account.upstreamRevocation.status],
            attempts: account.upstreamRevocation.attempts,
            lastError: account.upstreamRevocation.lastError,
            updateTime: toTimestamp(account.upstreamRevocation.updateTime),
          },
        }
      : {}),
  };
}

export function accountEventToProto(event: AccountEvent): MessageInitShape<typeof WatchAccountsResponseSchema> {
  return {
    account: accountToProto(event.account),
    previousStatus:
      event.account.status === event.previousStatus ? AccountStatus.UNSPECIFIED : accountStatuses[event.previousStatus],
    eventTime: toTimestamp(event.eventTime),
  };
}

/** The credential of a ConnectAccount request (validation made sure one is set). */
export function credentialFromProto(request: ConnectAccountRequest): KeyCredential {
  const { credential } = request;
  if (credential.case === "apiKey") return { kind: "api_key", apiKey: credential.value.key };
  if (credential.case === "basic") {
    return { kind: "basic", username: credential.value.username, password: credential.value.password };
  }
  throw invalidField("credential", "is required: set api_key or basic");
}

export function credentialToProto(
  accountId: string,
  credential: Credential,
): MessageInitShape<typeof GetAccountCredentialsResponseSchema> {
  switch (credential.kind) {
    case "api_key":
      return { accountId, credential: { case: "apiKey", value: { key: credential.apiKey } } };
    case "basic":
      return {
        accountId,
        credential: { case: "basic", value: { username: credential.username, password: credential.password } },
      };
    case "oauth2":
      return {
        accountId,
        credential: {
          case: "oauth2",
          value: {
            accessToken: credential.accessToken,
            tokenType: credential.tokenType,
            expireTime: toTimestamp(credential.expireTime),
            scopes: credential.scopes,
          },
        },
      };
  }
}
