import http from "node:http";
import http2 from "node:http2";
import { createConnection } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AccountService } from "../../src/gen/roomkey/v1/account_service_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { connectClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type Deployment, databasesOf, redisKeys, startDeployment } from "../helpers/server.js";

let d: Deployment;

beforeAll(async () => {
  d = await startDeployment();
});

afterAll(() => d.stop());

/** Names a grpc-js client can put in metadata (printable ASCII). */
const asciiHostile: Record<string, string> = {
  admin: "admin",
  local: "local",
  config: "config",
  "upper case": "ADMIN",
  "mixed case": "Prod",
  "dot dot slash": "../x",
  slash: "a/b",
  dot: "a.b",
  colon: "a:b",
  dollar: "$x",
  underscore: "_x",
  "25 characters": "a".repeat(25),
  "200 characters": "a".repeat(200),
  "leading digit": "1abc",
};

/** Names HTTP carries only as raw bytes; grpc-js drops such metadata values, so the edge sees none. */
const byteHostile: Record<string, string> = {
  "Cyrillic look-alike": "\u0430dmin",
  "zero-width joiner": "ad\u200dmin",
  "right-to-left override": "ad\u202emin",
  emoji: "env\u{1F600}",
  "single space": " ",
  empty: "",
};

/** One call per service, CreateEnvironment first: the call that would create a database. */
function callsFor(metadata: Metadata): [string, () => Promise<unknown>][] {
  return [
    ["CreateEnvironment", () => d.environments.unary(EnvironmentService.method.createEnvironment, {}, metadata)],
    ["GetEnvironment", () => d.environments.unary(EnvironmentService.method.getEnvironment, {}, metadata)],
    ["ListTokens", () => d.tokens.unary(TokenService.method.listTokens, {}, metadata)],
    ["ListAccounts", () => d.accounts.unary(AccountService.method.listAccounts, {}, metadata)],
  ];
}

/** A gRPC call over a bare HTTP/2 session, with header bytes no gRPC library would send. */
function rawGrpcCall(
  path: string,
  headers: Record<string, string>,
  body: Buffer = Buffer.from([0, 0, 0, 0, 0]),
): Promise<{ status?: string; message?: string; error?: string }> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${d.server.grpcAddress}`);
    session.on("error", () => undefined);
    const request = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let head: http2.IncomingHttpHeaders = {};
    const finish = (result: { status?: string; message?: string; error?: string }) => {
      session.close();
      resolve(result);
    };
    request.on("response", (h) => {
      head = h;
    });
    request.on("trailers", (t) => finish({ status: String(t["grpc-status"]), message: String(t["grpc-message"]) }));
    request.on("error", (e: Error & { code?: string }) => finish({ error: e.code ?? e.message }));
    request.on("close", () =>
      finish(
        head["grpc-status"] !== undefined
          ? { status: String(head["grpc-status"]), message: String(head["grpc-message"] ?? "") }
          : { error: "closed" },
      ),
    );
    request.end(body);
  });
}

/**
 * A Connect unary call (JSON) over HTTP/1.1 with raw header bytes, since
 * fetch and the Connect client refuse what a hostile client would send.
 */
function rawConnectCall(
  path: string,
  headers: Record<string, string | string[]>,
): Promise<{ status: number; body: { code?: string; message?: string } }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: "127.0.0.1",
        port: d.server.app.httpPort,
        method: "POST",
        path,
        headers: { "content-type": "application/json", authorization: `Bearer ${d.server.adminKey}`, ...headers },
      },
      (response) => {
        let data = "";
        response.on("data", (chunk: Buffer) => {
          data += chunk.toString();
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: data ? JSON.parse(data) : {} }));
      },
    );
    request.on("error", reject);
    request.end("{}");
  });
}

/** The header value as the UTF-8 bytes a non-JavaScript client would send. */
const utf8Bytes = (value: string) => Buffer.from(value, "utf8").toString("latin1");

describe("the roomkey-environment metadata", () => {
  for (const [label, name] of Object.entries(asciiHostile)) {
    it(`when it is ${label}, then every service answers INVALID_ARGUMENT naming the header`, async () => {
      for (const [method, call] of callsFor(metadataFor(name, d.server.adminKey))) {
        const error = await grpcFailure(call());
        expect(error.code, method).toBe(status.INVALID_ARGUMENT);
        const { errorInfo, badRequest } = grpcDetails(error);
        expect(errorInfo?.reason, method).toBe("ENVIRONMENT_INVALID");
        expect(badRequest?.fieldViolations[0]?.field, method).toBe("roomkey-environment");
      }
    });
  }

  for (const [label, name] of Object.entries(byteHostile)) {
    it(`when it is ${label} (raw bytes), then every service answers INVALID_ARGUMENT`, async () => {
      for (const path of [
        "/roomkey.v1.EnvironmentService/CreateEnvironment",
        "/roomkey.v1.TokenService/ListTokens",
        "/roomkey.v1.AccountService/ListAccounts",
      ]) {
        const result = await rawGrpcCall(path, {
          "roomkey-environment": utf8Bytes(name),
          authorization: `Bearer ${d.server.adminKey}`,
        });
        expect(result.status, `${label} ${path}`).toBe(String(status.INVALID_ARGUMENT));
        expect(decodeURIComponent(result.message ?? ""), path).toMatch(/^roomkey-environment: /);
      }
    });
  }

  it("when it is sent twice with different values, then INVALID_ARGUMENT says to send it once", async () => {
    for (const [method, call] of callsFor(metadataFor(["development", "staging"], d.server.adminKey))) {
      const error = await grpcFailure(call());
      expect(error.code, method).toBe(status.INVALID_ARGUMENT);
      expect(error.details, method).toContain("exactly once");
    }
  });

  it("when it is missing, then INVALID_ARGUMENT comes before authentication", async () => {
    const error = await grpcFailure(
      d.environments.unary(EnvironmentService.method.getEnvironment, {}, metadataFor(undefined)),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(grpcDetails(error).errorInfo?.reason).toBe("ENVIRONMENT_INVALID");
  });

  it("when it holds a NUL, then HTTP/2 refuses the stream and HTTP/1.1 answers invalid_argument", async () => {
    // RFC 9113 forbids NUL in field values: Node's HTTP/2 layer resets the stream before any handler runs.
    const grpcResult = await rawGrpcCall("/roomkey.v1.EnvironmentService/CreateEnvironment", {
      "roomkey-environment": "ab\u0000cd",
      authorization: `Bearer ${d.server.adminKey}`,
    });
    expect(grpcResult.status).toBeUndefined();
    expect(grpcResult.error).toBeDefined();

    // On the Connect port the parser refuses it; the answer is a Connect error body.
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = createConnection({ host: "127.0.0.1", port: d.server.app.httpPort });
      let data = "";
      socket.on("data", (chunk) => {
        data += chunk.toString();
      });
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
      socket.write(
        "POST /roomkey.v1.EnvironmentService/CreateEnvironment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          `roomkey-environment: ab\u0000cd\r\nAuthorization: Bearer ${d.server.adminKey}\r\nContent-Length: 2\r\n\r\n{}`,
      );
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4)).code).toBe("invalid_argument");
  });

  for (const [label, name] of Object.entries({ ...asciiHostile, ...byteHostile })) {
    it(`when it is ${label} on the Connect port, then every service answers invalid_argument`, async () => {
      for (const path of [
        "/roomkey.v1.EnvironmentService/CreateEnvironment",
        "/roomkey.v1.EnvironmentService/GetEnvironment",
        "/roomkey.v1.TokenService/ListTokens",
        "/roomkey.v1.AccountService/ListAccounts",
      ]) {
        const reply = await rawConnectCall(path, { "roomkey-environment": utf8Bytes(name) });
        expect(reply.status, `${label} ${path}`).toBe(400);
        expect(reply.body.code, path).toBe("invalid_argument");
        expect(reply.body.message, path).toMatch(/^roomkey-environment: /);
      }
    });
  }

  it("when it is sent twice on the Connect port, then invalid_argument says to send it once", async () => {
    const reply = await rawConnectCall("/roomkey.v1.EnvironmentService/GetEnvironment", {
      "roomkey-environment": ["development", "staging"],
    });
    expect(reply.body.code).toBe("invalid_argument");
    expect(reply.body.message).toContain("exactly once");
  });

  it("when hostile names were tried, then no database and no Redis key exists for any of them", async () => {
    const prefix = d.server.config.ROOMKEY_DB_PREFIX;
    const known = new Set(["development", "staging", "production"]);
    const dbs = await databasesOf(d.mongo, prefix);
    expect(dbs.sort()).toEqual([`${prefix}_control`, ...[...known].map((name) => `${prefix}_env_${name}`)].sort());
    const queuePrefix = d.server.config.ROOMKEY_QUEUE_PREFIX;
    // Beside the queues (`<prefix>:{<environment>}.<kind>:...`), only the worker fleet's own keys.
    const fleet = new Set(["workers", "epoch", "wake"].map((name) => `${queuePrefix}:{fleet}:${name}`));
    for (const key of await redisKeys(d.redis, `${queuePrefix}:*`)) {
      if (fleet.has(key)) continue;
      const environment = /^[^:]+:\{([^}]*)\}\./.exec(key)?.[1];
      expect(known.has(environment ?? ""), key).toBe(true);
    }
    // Nothing was ever queued for a hostile name, so nothing wakes for one either.
    for (const queue of await d.redis.zrange(`${queuePrefix}:{fleet}:wake`, 0, -1)) {
      expect(known.has(/^\{([^}]*)\}\./.exec(queue)?.[1] ?? ""), queue).toBe(true);
    }
  });
});

describe("authentication", () => {
  it("when no authorization is sent, then UNAUTHENTICATED with CREDENTIALS_MISSING", async () => {
    for (const [method, call] of callsFor(metadataFor("development"))) {
      const error = await grpcFailure(call());
      expect(error.code, method).toBe(status.UNAUTHENTICATED);
      expect(grpcDetails(error).errorInfo?.reason, method).toBe("CREDENTIALS_MISSING");
    }
  });

  it("when the key is wrong, then UNAUTHENTICATED with CREDENTIALS_INVALID and no hint of the key", async () => {
    const wrong = `${d.server.adminKey.slice(0, -1)}x`;
    for (const [method, call] of callsFor(metadataFor("development", wrong))) {
      const error = await grpcFailure(call());
      expect(error.code, method).toBe(status.UNAUTHENTICATED);
      expect(grpcDetails(error).errorInfo?.reason, method).toBe("CREDENTIALS_INVALID");
      expect(error.details).not.toContain(wrong);
    }
  });

  it("when the scheme is not Bearer, then UNAUTHENTICATED", async () => {
    const metadata = metadataFor("development");
    metadata.set("authorization", `Basic ${d.server.adminKey}`);
    const error = await grpcFailure(d.environments.unary(EnvironmentService.method.getEnvironment, {}, metadata));
    expect(error.code).toBe(status.UNAUTHENTICATED);
  });

  it("when the admin key names an unknown environment, then NOT_FOUND for every service", async () => {
    const name = randomEnvironmentName();
    for (const [method, call] of callsFor(metadataFor(name, d.server.adminKey)).slice(1)) {
      const error = await grpcFailure(call());
      expect(error.code, method).toBe(status.NOT_FOUND);
      expect(grpcDetails(error).errorInfo?.reason, method).toBe("ENVIRONMENT_NOT_FOUND");
    }
  });

  it("when the Connect client sends a wrong key, then it sees UNAUTHENTICATED with ErrorInfo", async () => {
    const client = connectClient(EnvironmentService, d.server.app.httpPort);
    const error = await client
      .getEnvironment({}, { headers: { "roomkey-environment": "development", authorization: "Bearer nope" } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unauthenticated);
    expect((error as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("CREDENTIALS_INVALID");
  });
});

describe("WatchAccounts at the edge", () => {
  it("when WatchAccounts names a hostile environment, then the stream ends with INVALID_ARGUMENT", async () => {
    const stream = d.accounts.stream(AccountService.method.watchAccounts, {}, metadataFor("Prod", d.server.adminKey));
    const error = await new Promise<{ code: number }>((resolve) => {
      stream.on("error", resolve);
      stream.on("data", () => undefined);
    });
    expect(error.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("limits and malformed input", () => {
  it("when the request body is not protobuf, then INVALID_ARGUMENT", async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
    const result = await rawGrpcCall(
      "/roomkey.v1.EnvironmentService/GetIntegration",
      { "roomkey-environment": "development", authorization: `Bearer ${d.server.adminKey}` },
      frame,
    );
    expect(result.status).toBe(String(status.INVALID_ARGUMENT));
  });

  it("when a message is larger than the cap, then RESOURCE_EXHAUSTED", async () => {
    const error = await grpcFailure(
      d.environments.unary(
        EnvironmentService.method.createEnvironment,
        { description: "x".repeat(d.server.config.ROOMKEY_MAX_MESSAGE_BYTES + 1) },
        metadataFor(randomEnvironmentName(), d.server.adminKey),
      ),
    );
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("when metadata is larger than the cap, then the call is refused", async () => {
    const metadata = metadataFor("development", d.server.adminKey);
    metadata.set("x-padding", "p".repeat(d.server.config.ROOMKEY_MAX_METADATA_BYTES + 1));
    const error = await grpcFailure(d.environments.unary(EnvironmentService.method.getEnvironment, {}, metadata));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
  });
});
