import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { auditIdFloor } from "../../src/domain/audit/audit.js";
import { InvalidArgumentError } from "../../src/domain/errors.js";
import { AuditActorKind, ListAuditEventsRequestSchema } from "../../src/gen/roomkey/v1/audit_pb.js";
import { auditEventToProto, auditFilterFromProto, auditListingFilter } from "../../src/rpc/mappers/audit-mapper.js";
import { errorOf } from "../helpers/fakes.js";

describe("the audit mapper", () => {
  it("when an entry is mapped, then every field reaches the proto, the actor kind as its enum", () => {
    const time = new Date(Date.UTC(2030, 0, 1, 12));
    const proto = auditEventToProto({
      id: "ae_x",
      time,
      actorKind: "unauthenticated",
      actorId: "tok_1",
      method: "roomkey.v1.TokenService/ListTokens",
      resource: "",
      requestId: "req",
      outcome: "PERMISSION_DENIED",
      reason: "TOKEN_WRONG_ENVIRONMENT",
      peer: "10.0.0.1",
      details: { token_environment: "staging" },
    });
    expect(proto).toMatchObject({
      id: "ae_x",
      actorKind: AuditActorKind.UNAUTHENTICATED,
      actorId: "tok_1",
      outcome: "PERMISSION_DENIED",
      reason: "TOKEN_WRONG_ENVIRONMENT",
      peer: "10.0.0.1",
      requestId: "req",
      details: { token_environment: "staging" },
    });
    expect(proto.time).toEqual(timestampFromDate(time));
  });

  it("when filters are given, then empty ones filter nothing and the page token binds all of them", () => {
    const start = new Date(Date.UTC(2030, 0, 1));
    const filter = auditFilterFromProto(
      create(ListAuditEventsRequestSchema, { startTime: timestampFromDate(start), method: "m" }),
    );
    expect(filter).toEqual({ startTime: start, method: "m" });
    expect(auditListingFilter(filter)).toEqual({
      start: String(start.getTime()),
      end: "",
      actor: "",
      resource: "",
      method: "m",
    });
  });

  it("when end_time is not after start_time, then INVALID_ARGUMENT names end_time", () => {
    const at = timestampFromDate(new Date(Date.UTC(2030, 0, 1)));
    const error = errorOf(() =>
      auditFilterFromProto(create(ListAuditEventsRequestSchema, { startTime: at, endTime: at })),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain("end_time");
  });

  it("when a time bounds ids, then an entry at that millisecond sorts at or above it and one a millisecond earlier below", () => {
    const at = new Date(Date.UTC(2030, 0, 1));
    const floor = auditIdFloor(at);
    expect(`${floor}00000000000000` >= floor).toBe(true);
    expect(`${auditIdFloor(new Date(at.getTime() - 1))}zzzzzzzzzzzzzz` < floor).toBe(true);
  });
});
