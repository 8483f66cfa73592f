import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { AuditActorKind as ActorKind, AuditEntry, AuditFilter } from "../../domain/audit/audit.js";
import { invalidField } from "../../domain/errors.js";
import { AuditActorKind, type AuditEventSchema, type ListAuditEventsRequest } from "../../gen/roomkey/v1/audit_pb.js";
import { toTimestamp } from "./time.js";

const actorKinds: Record<ActorKind, AuditActorKind> = {
  admin: AuditActorKind.ADMIN,
  token: AuditActorKind.TOKEN,
  connect_session: AuditActorKind.CONNECT_SESSION,
  worker: AuditActorKind.WORKER,
  unauthenticated: AuditActorKind.UNAUTHENTICATED,
};

export function auditEventToProto(entry: AuditEntry): MessageInitShape<typeof AuditEventSchema> {
  return {
    id: entry.id,
    time: toTimestamp(entry.time),
    actorKind: actorKinds[entry.actorKind] ?? AuditActorKind.UNSPECIFIED,
    actorId: entry.actorId,
    method: entry.method,
    resource: entry.resource,
    requestId: entry.requestId,
    outcome: entry.outcome,
    reason: entry.reason,
    peer: entry.peer,
    details: { ...entry.details },
  };
}

/** The request's filters; an empty string or an unset time filters nothing. */
export function auditFilterFromProto(req: ListAuditEventsRequest): AuditFilter {
  const startTime = req.startTime ? timestampDate(req.startTime) : undefined;
  const endTime = req.endTime ? timestampDate(req.endTime) : undefined;
  for (const [field, time] of [
    ["start_time", startTime],
    ["end_time", endTime],
  ] as const) {
    if (time && Number.isNaN(time.getTime())) throw invalidField(field, "is not a valid time");
  }
  if (startTime && endTime && endTime.getTime() <= startTime.getTime()) {
    throw invalidField("end_time", "must be after start_time");
  }
  return {
    ...(startTime ? { startTime } : {}),
    ...(endTime ? { endTime } : {}),
    ...(req.actorId ? { actorId: req.actorId } : {}),
    ...(req.resource ? { resource: req.resource } : {}),
    ...(req.method ? { method: req.method } : {}),
  };
}

/** The filters as a page token binds them: every field, empty ones included. */
export function auditListingFilter(filter: AuditFilter): Record<string, string> {
  return {
    start: filter.startTime ? String(filter.startTime.getTime()) : "",
    end: filter.endTime ? String(filter.endTime.getTime()) : "",
    actor: filter.actorId ?? "",
    resource: filter.resource ?? "",
    method: filter.method ?? "",
  };
}
