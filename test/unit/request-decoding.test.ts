import { create, toBinary } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { describe, expect, it } from "vitest";
import { RoomkeyError } from "../../src/domain/errors.js";
import { PutIntegrationRequestSchema } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { CreateTokenRequestSchema } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { clipBytes, countElements } from "../../src/rpc/edge.js";
import { decodeRequest } from "../../src/rpc/request-decoding.js";

const unknownField = Buffer.from([0xc0, 0x3e, 0x01]);

describe("decoding requests", () => {
  it("when a request carries unknown fields, then they are dropped, not kept on the message", () => {
    const known = toBinary(CreateTokenRequestSchema, create(CreateTokenRequestSchema, { name: "ci" }));
    const message = decodeRequest(
      CreateTokenRequestSchema,
      Buffer.concat([known, unknownField, unknownField]),
      "binary",
    );
    expect((message as { name?: string }).name).toBe("ci");
    expect((message as { $unknown?: unknown }).$unknown).toBeUndefined();
  });

  it("when JSON names a field this server does not know, then it is ignored", () => {
    const message = decodeRequest(
      CreateTokenRequestSchema,
      new TextEncoder().encode('{"name":"ci","later":1}'),
      "json",
    );
    expect((message as { name?: string }).name).toBe("ci");
  });

  it.each([
    ["an invalid wire type", "binary", Buffer.from([0x17, 0x01])],
    ["a truncated length", "binary", Buffer.from([0x0a, 0x7f, 0x01])],
    ["JSON that does not parse", "json", Buffer.from("{nope")],
    ["JSON that is not UTF-8", "json", Buffer.from([0x7b, 0xff, 0x7d])],
    ["JSON of the wrong type", "json", Buffer.from('{"name":5}')],
  ] as const)(
    "when a request holds %s, then INVALID_ARGUMENT with reason REQUEST_MALFORMED",
    (_name, format, bytes) => {
      let caught: unknown;
      try {
        decodeRequest(CreateTokenRequestSchema, bytes, format);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(RoomkeyError);
      expect((caught as RoomkeyError).kind).toBe("invalid_argument");
      expect((caught as RoomkeyError).reason).toBe("REQUEST_MALFORMED");
      expect((caught as RoomkeyError).message).toContain("roomkey.v1.CreateTokenRequest");
    },
  );
});

describe("counting a request's elements", () => {
  it("when lists and maps are nested, then every entry counts", () => {
    const request = create(PutIntegrationRequestSchema, {
      integration: {
        name: "x",
        oauth2: { scopes: ["a", "b", "c"], authorizationParams: { p: "1", q: "2" } },
      },
    });
    expect(countElements(reflect(PutIntegrationRequestSchema, request), 100)).toBe(5);
  });

  it("when a request holds more than the limit, then counting stops soon after it", () => {
    const request = create(CreateTokenRequestSchema, { scopes: Array.from({ length: 10_000 }, () => "") });
    expect(countElements(reflect(CreateTokenRequestSchema, request), 10)).toBeGreaterThan(10);
  });
});

describe("clipping text by bytes", () => {
  it("when text fits, then it is kept; when it does not, then it is cut at a character within the bytes", () => {
    expect(clipBytes("short", 10)).toBe("short");
    const clipped = clipBytes("键".repeat(100), 50);
    expect(Buffer.byteLength(clipped)).toBeLessThanOrEqual(50);
    expect(clipped.endsWith("…")).toBe(true);
    expect(clipped.slice(0, -1)).toBe("键".repeat(15));
  });
});
