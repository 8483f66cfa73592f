import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errorOf, parseAddr, roomkeyInterceptor } from "../../src/client/index.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "../../src/gen/roomkey/v1/error_reason_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";

/** The table all three clients read. */
const addresses: { addr: string; target?: string; tls?: boolean; error?: boolean }[] = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "../../clients/testdata/addresses.json"), "utf8"),
);

describe("roomkey/client", () => {
  it.each(addresses)("when the address is $addr, then it is read as the Go and Python clients read it", (c) => {
    if (c.error) expect(() => parseAddr(c.addr)).toThrow(/want host:port/);
    else expect(parseAddr(c.addr)).toEqual({ target: c.target, tls: c.tls });
  });

  it("when a call sets its own environment, then the interceptor keeps it and adds only the token", async () => {
    // The server side echoes the two headers it got: environment in `environment`, authorization in `tokenId`.
    const transport = createRouterTransport(
      (router) =>
        router.service(TokenService, {
          verifyToken: (_req, ctx) => ({
            environment: ctx.requestHeader.get("roomkey-environment") ?? "",
            tokenId: ctx.requestHeader.get("authorization") ?? "",
          }),
        }),
      { transport: { interceptors: [roomkeyInterceptor("staging", "rk_staging_x")] } },
    );
    const client = createClient(TokenService, transport);
    expect(await client.verifyToken({ token: "t" })).toMatchObject({
      environment: "staging",
      tokenId: "Bearer rk_staging_x",
    });
    expect(await client.verifyToken({ token: "t" }, { headers: { "roomkey-environment": "qa" } })).toMatchObject({
      environment: "qa",
      tokenId: "Bearer rk_staging_x",
    });
  });

  it("when an error carries ErrorInfo and BadRequest, then errorOf gives the reason, metadata and violations", () => {
    const error = new ConnectError("m", Code.PermissionDenied, undefined, [
      {
        desc: ErrorInfoSchema,
        value: { reason: "TOKEN_WRONG_ENVIRONMENT", domain: "roomkey.dev", metadata: { k: "v" } },
      },
      { desc: BadRequestSchema, value: { fieldViolations: [{ field: "name", description: "bad" }] } },
    ]);
    const err = errorOf(error);
    expect(err).toMatchObject({
      code: Code.PermissionDenied,
      reason: ErrorReason.TOKEN_WRONG_ENVIRONMENT,
      reasonName: "TOKEN_WRONG_ENVIRONMENT",
      metadata: { k: "v" },
    });
    expect(err?.fieldViolations.map((v) => v.field)).toEqual(["name"]);
  });

  it("when the reason is newer than the client or of another domain, then it is kept by name or ignored", () => {
    const newer = new ConnectError("m", Code.Internal, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "SOMETHING_NEW", domain: "roomkey.dev" } },
    ]);
    expect(errorOf(newer)).toMatchObject({ reason: ErrorReason.UNSPECIFIED, reasonName: "SOMETHING_NEW" });
    const foreign = new ConnectError("m", Code.Internal, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "TOKEN_WRONG_ENVIRONMENT", domain: "example.com" } },
    ]);
    expect(errorOf(foreign)).toMatchObject({ reason: ErrorReason.UNSPECIFIED, reasonName: "" });
    expect(errorOf(new Error("x"))).toBeUndefined();
  });
});
