import net from "node:net";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { environmentHeader } from "../../src/domain/environments/environment-name.js";
import { HealthCheckRequestSchema } from "../../src/gen/grpc/health/v1/health_pb.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { defaultMaxRequestBytes } from "../../src/rpc/method-policy.js";
import { grpcDetails, grpcFailure } from "../helpers/clients.js";
import { grpcFrame, grpcWebStatus, httpRequest, rawGrpc, rawHttp } from "../helpers/raw-clients.js";
import { type Deployment, startDeployment } from "../helpers/server.js";

let d: Deployment;
const environment = "development";

beforeAll(async () => {
  d = await startDeployment();
});

afterAll(() => d.stop());

const getEnvironment = "/roomkey.v1.EnvironmentService/GetEnvironment";
const watchAccounts = "/roomkey.v1.AccountService/WatchAccounts";
const healthCheck = "/grpc.health.v1.Health/Check";

/** `count` unknown varint fields (field 1000 = 1): what the pre-authentication attack sent. */
function unknownFields(count: number): Buffer {
  return Buffer.alloc(count * 3, Buffer.from([0xc0, 0x3e, 0x01]));
}

/** Not protobuf: field 2 with wire type 7, which does not exist. */
const malformed = Buffer.from([0x17, 0x01]);
/** Not protobuf either: a length-delimited field 1 that promises 127 bytes and holds 2. */
const truncated = Buffer.from([0x0a, 0x7f, 0x01, 0x02]);

function admin(): Record<string, string> {
  return { [environmentHeader]: environment, authorization: `Bearer ${d.server.adminKey}` };
}

function connectError(body: Buffer): { code?: string; message?: string } {
  return JSON.parse(body.toString("utf8")) as { code?: string; message?: string };
}

/** The end-stream message of a Connect streaming answer. */
function connectEndStream(body: Buffer): { error?: { code?: string } } {
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    if (flags & 0x02) return JSON.parse(body.subarray(offset + 5, offset + 5 + length).toString("utf8"));
    offset += 5 + length;
  }
  return {};
}

describe("one request never ends the process (9.0)", () => {
  it.each([
    ["a space", "a b"],
    ["empty", ""],
    ["a port past 65535", "127.0.0.1:99999"],
    ["an unclosed IPv6 bracket", "[::1"],
  ])("when the Host header is %s, then the answer is 400 and the server keeps serving", async (_name, host) => {
    const answer = await rawHttp(
      d.server.app.httpPort,
      `POST ${getEnvironment} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/proto\r\nContent-Length: 0\r\n\r\n`,
    );
    expect(answer?.status).toBe(400);
    expect(connectError(answer?.body ?? Buffer.from("{}")).code).toBe("invalid_argument");
    const after = await httpRequest(d.server.app.httpPort, {
      path: getEnvironment,
      headers: { ...admin(), "content-type": "application/proto" },
      body: new Uint8Array(0),
    });
    expect(after.status).toBe(200);
  });

  it("when an HTTP/1.0 request has no Host header, then the answer is 400 and the server keeps serving", async () => {
    const answer = await rawHttp(
      d.server.app.httpPort,
      `POST ${getEnvironment} HTTP/1.0\r\nContent-Type: application/proto\r\nContent-Length: 0\r\n\r\n`,
    );
    expect(answer?.status).toBe(400);
    const after = await rawGrpc(d.server.grpcAddress, healthCheck, {}, grpcFrame(new Uint8Array(0)));
    expect(after.status).toBe(status.OK);
  });
});

describe("nothing is decoded before the edge admits the call (9.2)", () => {
  it("when 4 MB of unknown fields come with no credentials on the gRPC port, then UNAUTHENTICATED, the body unread", async () => {
    const answer = await rawGrpc(
      d.server.grpcAddress,
      getEnvironment,
      { [environmentHeader]: environment },
      grpcFrame(unknownFields(1_333_333)),
    );
    expect(answer.status).toBe(status.UNAUTHENTICATED);
  });

  it("when a malformed body comes with no credentials, then UNAUTHENTICATED on both ports: it was never decoded", async () => {
    const grpc = await rawGrpc(
      d.server.grpcAddress,
      getEnvironment,
      { [environmentHeader]: environment },
      grpcFrame(malformed),
    );
    expect(grpc.status).toBe(status.UNAUTHENTICATED);
    const connect = await httpRequest(d.server.app.httpPort, {
      path: getEnvironment,
      headers: { [environmentHeader]: environment, "content-type": "application/proto" },
      body: malformed,
    });
    expect(connect.status).toBe(401);
    expect(connectError(connect.body).code).toBe("unauthenticated");
  });

  it("when an admitted request is over its method's limit, then RESOURCE_EXHAUSTED REQUEST_TOO_LARGE on both ports", async () => {
    const body = unknownFields(Math.ceil((defaultMaxRequestBytes + 1) / 3));
    const grpc = await rawGrpc(d.server.grpcAddress, getEnvironment, admin(), grpcFrame(body));
    expect(grpc.status).toBe(status.RESOURCE_EXHAUSTED);
    const connect = await httpRequest(d.server.app.httpPort, {
      path: getEnvironment,
      headers: { ...admin(), "content-type": "application/proto" },
      body,
    });
    expect(connect.status).toBe(429);
    expect(connectError(connect.body).code).toBe("resource_exhausted");
    const huge = await rawGrpc(d.server.grpcAddress, getEnvironment, admin(), grpcFrame(unknownFields(1_333_333)));
    expect(huge.status).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("when an admitted request carries unknown fields under its limit, then it is served", async () => {
    const grpc = await rawGrpc(d.server.grpcAddress, getEnvironment, admin(), grpcFrame(unknownFields(1_000)));
    expect(grpc.status).toBe(status.OK);
  });

  it("when a client opens an HTTP/2 connection, then the server bounds its concurrent calls", async () => {
    const answer = await rawGrpc(d.server.grpcAddress, healthCheck, {}, grpcFrame(new Uint8Array(0)));
    expect(answer.maxConcurrentStreams).toBe(d.server.config.ROOMKEY_MAX_CONCURRENT_STREAMS);
  });
});

describe("undecodable input is INVALID_ARGUMENT on every service of both ports (9.9)", () => {
  const validHealth = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));

  it.each([
    ["a malformed body to Health/Check", healthCheck, {}, grpcFrame(malformed)],
    ["a malformed body to GetEnvironment", getEnvironment, null, grpcFrame(malformed)],
    [
      "a gzip-flagged frame of garbage to Health/Check",
      healthCheck,
      { "grpc-encoding": "gzip" },
      grpcFrame(malformed, true),
    ],
    [
      "a gzip-flagged frame of garbage to GetEnvironment",
      getEnvironment,
      { "grpc-encoding": "gzip" },
      grpcFrame(malformed, true),
    ],
    ["grpc-timeout: abc to Health/Check", healthCheck, { "grpc-timeout": "abc" }, grpcFrame(validHealth)],
    ["grpc-timeout: abc to GetEnvironment", getEnvironment, { "grpc-timeout": "abc" }, grpcFrame(new Uint8Array(0))],
    ["a truncated field to GetEnvironment", getEnvironment, null, grpcFrame(truncated)],
    ["a truncated frame to GetEnvironment", getEnvironment, null, grpcFrame(new Uint8Array(3), false, 10)],
  ])("when the gRPC port gets %s, then INVALID_ARGUMENT", async (_name, path, extra, body) => {
    const headers = { ...(path === healthCheck ? {} : admin()), ...(extra ?? {}) };
    const answer = await rawGrpc(d.server.grpcAddress, path, headers, body);
    expect(answer.status).toBe(status.INVALID_ARGUMENT);
  });

  it("when the gRPC port gets a frame compressed with an encoding it does not know, then UNIMPLEMENTED", async () => {
    const answer = await rawGrpc(
      d.server.grpcAddress,
      healthCheck,
      { "grpc-encoding": "snappy" },
      grpcFrame(malformed, true),
    );
    expect(answer.status).toBe(status.UNIMPLEMENTED);
  });

  it("when a malformed body reaches a roomkey service over gRPC, then the error says REQUEST_MALFORMED", async () => {
    const error = await grpcFailure(
      new Promise((resolve, reject) => {
        rawGrpc(d.server.grpcAddress, getEnvironment, admin(), grpcFrame(malformed)).then((a) =>
          a.status === status.OK ? resolve(a) : reject(Object.assign(new Error(a.message), { code: a.status })),
        );
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.message).toMatch(/malformed request/);
  });

  const truncatedGzip = gzipSync(Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63])).subarray(0, 12);
  const truncatedBrotli = brotliCompressSync(Buffer.alloc(1000, 0x0a)).subarray(0, 4);

  it.each([
    ["malformed binary protobuf (Connect unary)", { "content-type": "application/proto" }, malformed],
    ["malformed JSON (Connect unary)", { "content-type": "application/json" }, Buffer.from("{nope")],
    ["a gzip body that ends early", { "content-type": "application/proto", "content-encoding": "gzip" }, truncatedGzip],
    ["a br body that ends early", { "content-type": "application/proto", "content-encoding": "br" }, truncatedBrotli],
  ])("when the HTTP port gets %s, then 400 invalid_argument", async (_name, headers, body) => {
    for (const credentials of [admin(), { [environmentHeader]: environment }]) {
      const answer = await httpRequest(d.server.app.httpPort, {
        path: getEnvironment,
        headers: { ...credentials, ...headers },
        body,
      });
      const expected = "authorization" in credentials ? [400, "invalid_argument"] : [401, "unauthenticated"];
      expect([answer.status, connectError(answer.body).code]).toEqual(expected);
    }
  });

  it.each([
    ["malformed binary protobuf", {}, grpcFrame(malformed)],
    ["a frame flagged compressed with no encoding header", {}, grpcFrame(malformed, true)],
    ["a gzip frame that ends early", { "grpc-encoding": "gzip" }, grpcFrame(truncatedGzip, true)],
    [
      "two messages for a unary method",
      {},
      Buffer.concat([grpcFrame(new Uint8Array(0)), grpcFrame(new Uint8Array(0))]),
    ],
  ])("when gRPC-Web gets %s, then grpc-status 3", async (_name, headers, body) => {
    const answer = await httpRequest(d.server.app.httpPort, {
      path: getEnvironment,
      headers: { ...admin(), "content-type": "application/grpc-web+proto", ...headers },
      body,
    });
    expect(grpcWebStatus(answer)).toBe(status.INVALID_ARGUMENT);
  });

  it("when a Connect stream gets a malformed envelope, then its end-stream says invalid_argument", async () => {
    const answer = await httpRequest(d.server.app.httpPort, {
      path: watchAccounts,
      headers: { ...admin(), "content-type": "application/connect+proto" },
      body: grpcFrame(malformed),
    });
    expect(connectEndStream(answer.body).error?.code).toBe("invalid_argument");
  });

  it("when a Connect GET carries base64=1 and a message that is not base64, then 400 invalid_argument", async () => {
    const answer = await httpRequest(d.server.app.httpPort, {
      method: "GET",
      path: `${getEnvironment}?connect=v1&encoding=proto&base64=1&message=${encodeURIComponent("!!not base64!!")}`,
      headers: admin(),
    });
    expect(answer.status).toBe(400);
    expect(connectError(answer.body).code).toBe("invalid_argument");
  });

  it("when a Connect GET names a compression the server does not support, then UNIMPLEMENTED, as a POST gets", async () => {
    const answer = await httpRequest(d.server.app.httpPort, {
      method: "GET",
      path: `${getEnvironment}?connect=v1&encoding=proto&base64=1&message=&compression=zstd`,
      headers: admin(),
    });
    expect(connectError(answer.body).code).toBe("unimplemented");
    const post = await httpRequest(d.server.app.httpPort, {
      path: getEnvironment,
      headers: { ...admin(), "content-type": "application/proto", "content-encoding": "zstd" },
      body: new Uint8Array(0),
    });
    expect(connectError(post.body).code).toBe("unimplemented");
  });

  it("when a Connect GET is well formed, then it is served", async () => {
    const answer = await httpRequest(d.server.app.httpPort, {
      method: "GET",
      path: `${getEnvironment}?connect=v1&encoding=json&message=${encodeURIComponent("{}")}`,
      headers: admin(),
    });
    expect(answer.status).toBe(200);
  });
});

describe("validation does not amplify (9.9)", () => {
  it("when CreateToken carries thousands of empty scopes, then at most 20 violations come back at once over gRPC", async () => {
    const scopes = Array.from({ length: 5_000 }, () => "");
    const started = Date.now();
    const error = await grpcFailure(
      d.tokens.unary(TokenService.method.createToken, { name: "n", scopes }, d.admin(environment), {
        deadlineMs: 10_000,
      }),
    );
    const ms = Date.now() - started;
    console.log(`5,000 empty scopes: ${status[error.code]} in ${ms} ms, ${error.details.length} characters`);
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations.length ?? 0).toBeLessThanOrEqual(20);
    expect(error.details).toMatch(/only the first violation/);
  });

  it("when CreateToken carries 500 empty scopes, then the first violations (at most 20, within the byte budget) and their count come back over gRPC", async () => {
    const scopes = Array.from({ length: 500 }, () => "");
    const error = await grpcFailure(
      d.tokens.unary(TokenService.method.createToken, { name: "n", scopes }, d.admin(environment), {
        deadlineMs: 10_000,
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    // Each violation repeats the scope list, so the 3,000-byte budget, not the count of 20, ends the list.
    const listed = grpcDetails(error).badRequest?.fieldViolations.length ?? 0;
    expect(listed).toBeGreaterThanOrEqual(10);
    expect(listed).toBeLessThanOrEqual(20);
    expect(error.details).toMatch(new RegExp(`and \\d+ more; the first ${listed} are listed`));
  });

  it("when CreateToken carries 100,000 empty scopes, then RESOURCE_EXHAUSTED before any validation", async () => {
    const scopes = Array.from({ length: 100_000 }, () => "");
    const error = await grpcFailure(
      d.tokens.unary(TokenService.method.createToken, { name: "n", scopes }, d.admin(environment), {
        deadlineMs: 10_000,
      }),
    );
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("when a request breaks a few rules, then every one is listed", async () => {
    const error = await grpcFailure(
      d.tokens.unary(TokenService.method.createToken, { name: "", scopes: ["nope", ""] }, d.admin(environment)),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations.length).toBeGreaterThanOrEqual(3);
  });

  it("when violations carry long multi-byte field paths, then the error still fits in a gRPC trailer", async () => {
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`${"键".repeat(200)}${i}`, "v"]));
    const error = await grpcFailure(
      d.accounts.unary(
        AccountService.method.connectAccount,
        { integration: "none", tenantId: "t", labels, credential: { case: "apiKey", value: { key: "k" } } },
        d.admin(environment),
        { deadlineMs: 10_000 },
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    const [details] = error.metadata?.get("grpc-status-details-bin") ?? [];
    const size = (details instanceof Buffer ? details.length : 0) * (4 / 3) + Buffer.byteLength(error.details);
    console.log(
      `64 labels with 600-byte keys: ${grpcDetails(error).badRequest?.fieldViolations.length} violations, trailer about ${Math.round(size)} bytes`,
    );
    expect(size).toBeLessThan(8_192);
  });

  it("when an update mask names more paths than the method has, then INVALID_ARGUMENT names update_mask", async () => {
    const paths = Array.from({ length: 17 }, (_, i) => `settings.p${i}`);
    const error = await grpcFailure(
      d.environments.unary(
        EnvironmentService.method.updateEnvironment,
        { environment: {}, updateMask: { paths } },
        d.admin(environment),
      ),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).badRequest?.fieldViolations.map((v) => v.field)).toContain("update_mask");
  });
});

describe("one call at a time per HTTP/1.1 connection (9.2)", () => {
  it("when requests are pipelined on one connection, then the next is only handled once the one before is answered", async () => {
    const name = `pipelined-${Date.now()}`;
    const watch = grpcFrame(Buffer.alloc(0));
    const create = Buffer.from(JSON.stringify({ name, scopes: ["tokens:read"] }));
    const auth = `roomkey-environment: ${environment}\r\nauthorization: Bearer ${d.server.adminKey}\r\n`;
    const pipelined = Buffer.concat([
      Buffer.from(
        `POST ${watchAccounts} HTTP/1.1\r\nHost: x\r\n${auth}content-type: application/connect+proto\r\n` +
          `connect-timeout-ms: 1500\r\ncontent-length: ${watch.length}\r\n\r\n`,
      ),
      watch,
      Buffer.from(
        `POST /roomkey.v1.TokenService/CreateToken HTTP/1.1\r\nHost: x\r\n${auth}content-type: application/json\r\n` +
          `content-length: ${create.length}\r\n\r\n`,
      ),
      create,
    ]);
    const exists = async () =>
      (await d.tokens.unary(TokenService.method.listTokens, { pageSize: 100 }, d.admin(environment))).tokens.some(
        (t) => t.name === name,
      );
    // Written, and left open: a client that half-closed would have its calls cut short.
    const socket = net.connect(d.server.app.httpPort, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    socket.write(pipelined);
    try {
      await new Promise((r) => setTimeout(r, 700));
      // The watch is still open: the CreateToken behind it has not run.
      expect(await exists()).toBe(false);
      await new Promise((r) => setTimeout(r, 2_000));
      expect(await exists()).toBe(true);
    } finally {
      socket.destroy();
    }
  });
});
