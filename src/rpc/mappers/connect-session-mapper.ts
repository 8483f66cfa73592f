import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EndUser } from "../../domain/accounts/accounts.js";
import type {
  ConnectIntegrationView,
  ConnectSessionView,
  ConnectSessionStatus as DomainSessionStatus,
} from "../../domain/connect-sessions/connect-sessions.js";
import {
  type ConnectIntegrationSchema,
  type ConnectSessionSchema,
  ConnectSessionStatus,
  type EndUserSchema,
  type EndUser as ProtoEndUser,
} from "../../gen/roomkey/v1/connect_sessions_pb.js";
import { authTypeToProto } from "./integration-mapper.js";
import { toTimestamp } from "./time.js";

export function endUserToProto(endUser: EndUser): MessageInitShape<typeof EndUserSchema> {
  return { id: endUser.id, displayName: endUser.displayName, email: endUser.email, tags: [...endUser.tags] };
}

/** An end user of a request; undefined when the request has none. */
export function endUserFromProto(endUser: ProtoEndUser): EndUser;
export function endUserFromProto(endUser: ProtoEndUser | undefined): EndUser | undefined;
export function endUserFromProto(endUser: ProtoEndUser | undefined): EndUser | undefined {
  if (!endUser) return undefined;
  return { id: endUser.id, displayName: endUser.displayName, email: endUser.email, tags: [...endUser.tags] };
}

const statuses: Readonly<Record<DomainSessionStatus, ConnectSessionStatus>> = {
  open: ConnectSessionStatus.OPEN,
  spent: ConnectSessionStatus.SPENT,
  expired: ConnectSessionStatus.EXPIRED,
  revoked: ConnectSessionStatus.REVOKED,
};

export function connectSessionToProto(session: ConnectSessionView): MessageInitShape<typeof ConnectSessionSchema> {
  return {
    id: session.id,
    endUser: endUserToProto(session.endUser),
    tenantId: session.tenantId,
    integrations: [...session.integrations],
    accountId: session.accountId ?? "",
    reauthorize: session.reauthorize,
    allowedOrigins: [...session.allowedOrigins],
    returnUrl: session.returnUrl ?? "",
    labels: session.labels,
    status: statuses[session.status],
    displayPrefix: session.displayPrefix,
    createTime: toTimestamp(session.createTime),
    expireTime: toTimestamp(session.expireTime),
    spendTime: toTimestamp(session.spendTime),
    revokeTime: toTimestamp(session.revokeTime),
  };
}

export function connectIntegrationToProto(
  integration: ConnectIntegrationView,
): MessageInitShape<typeof ConnectIntegrationSchema> {
  return {
    name: integration.name,
    displayName: integration.displayName,
    authType: authTypeToProto(integration.authType),
  };
}
