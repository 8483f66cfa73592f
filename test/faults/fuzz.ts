/**
 * Fuzzed requests on both ports, from a seeded generator (the same seed
 * sends the same requests): random bytes, mutated valid messages, hostile
 * metadata and Host headers, broken compression, Connect GET parameters,
 * gRPC-Web and Connect frames. No answer may be INTERNAL (HTTP 500), no
 * error may be logged, and the process must stay up.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { HealthCheckRequestSchema } from "../../src/gen/grpc/health/v1/health_pb.js";
import {
  AccountService,
  ConnectAccountRequestSchema,
  ListAccountsRequestSchema,
  WatchAccountsRequestSchema,
} from "../../src/gen/roomkey/v1/account_service_pb.js";
import {
  EnvironmentService,
  PutIntegrationRequestSchema,
  UpdateEnvironmentRequestSchema,
} from "../../src/gen/roomkey/v1/environment_service_pb.js";
import {
  CreateTokenRequestSchema,
  TokenService,
  VerifyTokenRequestSchema,
} from "../../src/gen/roomkey/v1/token_service_pb.js";
import { admin, type Outcome, type Roomkey } from "./harness.js";

/** A small seeded generator (mulberry32): a run can be repeated exactly. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }
  printable(n: number): string {
    return String.fromCharCode(...Array.from({ length: n }, () => 0x20 + this.int(95)));
  }
}

function bin<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  return Buffer.from(toBinary(schema, create(schema, init)));
}

const validMessages: Buffer[] = [
  Buffer.alloc(0),
  bin(HealthCheckRequestSchema, { service: "" }),
  bin(CreateTokenRequestSchema, { name: "fuzz", scopes: ["tokens:read", "accounts:read"] }),
  bin(VerifyTokenRequestSchema, { token: "rk_development_0000000000000000000000000000000000000000000000000000AAAAAA" }),
  bin(ListAccountsRequestSchema, { pageSize: 5, integration: "keyed", tenantId: "t" }),
  bin(WatchAccountsRequestSchema, { accountIds: ["acc_0000000000000000000000"] }),
  bin(ConnectAccountRequestSchema, {
    integration: "keyed",
    tenantId: "t",
    labels: { a: "b" },
    credential: { case: "apiKey", value: { key: "sk_fuzz" } },
  }),
  bin(PutIntegrationRequestSchema, {
    integration: { name: "fuzz", credentialCheck: { url: "https://api.example.com/me" } },
  }),
  bin(UpdateEnvironmentRequestSchema, { environment: { displayName: "x" }, updateMask: { paths: ["display_name"] } }),
];

const methodPaths = [EnvironmentService, TokenService, AccountService].flatMap((s) =>
  s.methods.map((m) => `/${s.typeName}/${m.name}`),
);
const grpcPaths = [
  ...methodPaths,
  "/grpc.health.v1.Health/Check",
  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  "/no.Such/Method",
  "/",
];

function mutate(rng: Rng, message: Buffer): Buffer {
  const bytes = Buffer.from(message);
  switch (rng.int(6)) {
    case 0:
      for (let i = 0; i < 1 + rng.int(4) && bytes.length > 0; i++) {
        const at = rng.int(bytes.length);
        bytes[at] = (bytes[at] ?? 0) ^ (1 << rng.int(8));
      }
      return bytes;
    case 1:
      return bytes.subarray(0, rng.int(bytes.length + 1));
    case 2: {
      const at = rng.int(bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), rng.bytes(1 + rng.int(16)), bytes.subarray(at)]);
    }
    case 3:
      // Unknown fields, many of them.
      return Buffer.concat([bytes, Buffer.alloc(3 * (1 + rng.int(3_000)), Buffer.from([0xc0, 0x3e, 0x01]))]);
    case 4:
      // A length-delimited field that promises more than there is.
      return Buffer.concat([bytes, Buffer.from([0x0a, 0x7f]), rng.bytes(rng.int(8))]);
    default:
      return Buffer.concat([bytes, bytes]);
  }
}

function frame(data: Buffer, flags = 0, length = data.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([head, data]);
}

function compress(rng: Rng, data: Buffer, encoding: string): Buffer {
  const whole =
    encoding === "gzip"
      ? gzipSync(data)
      : encoding === "br"
        ? brotliCompressSync(data)
        : encoding === "deflate"
          ? deflateSync(data)
          : rng.bytes(data.length);
  // Often cut short or corrupted: broken compression is what this is for.
  if (rng.chance(0.5)) return whole.subarray(0, rng.int(whole.length));
  if (rng.chance(0.3)) return mutate(rng, whole);
  return whole;
}

/**
 * The fuzz works in an environment of its own: with the admin key, a mutated
 * request may well delete or change the environment it names.
 */
const fuzzEnvironment = "fuzz";

const hostileEnvironments = [
  fuzzEnvironment,
  fuzzEnvironment,
  "ADMIN",
  "../x",
  "a".repeat(200),
  " fuzz",
  "dev elopment",
  "admin",
  "$x",
  "x.y",
  "",
];

function metadata(rng: Rng, roomkey: Roomkey): Record<string, string> {
  const headers: Record<string, string> = {};
  if (rng.chance(0.9))
    headers["roomkey-environment"] = rng.chance(0.2) ? rng.printable(rng.int(40)) : rng.pick(hostileEnvironments);
  const auth = rng.int(6);
  if (auth <= 2) headers.authorization = `Bearer ${roomkey.adminKey}`;
  else if (auth === 3)
    headers.authorization = `Bearer rk_${fuzzEnvironment}_${rng.printable(54).replace(/[^0-9A-Za-z]/g, "a")}`;
  else if (auth === 4) headers.authorization = rng.printable(rng.int(100));
  if (rng.chance(0.1)) headers[`x-fuzz-${rng.int(100)}`] = rng.printable(rng.int(200));
  if (rng.chance(0.03)) headers["x-big"] = "a".repeat(17_000);
  return headers;
}

type Case = () => Promise<string>;

/** Answers an HTTP/2 stream as "grpc <code>", "reset" or "streaming" (still open after a second). */
function grpcCase(session: () => http2.ClientHttp2Session, rng: Rng, roomkey: Roomkey): Case {
  const path = rng.pick(grpcPaths);
  const headers: Record<string, string> = {
    ":method": "POST",
    ":path": path,
    "content-type": rng.chance(0.95)
      ? "application/grpc"
      : rng.pick(["application/grpc+json", "text/plain", rng.printable(10)]),
    te: "trailers",
    ...metadata(rng, roomkey),
  };
  let body: Buffer;
  const message = rng.chance(0.6) ? mutate(rng, rng.pick(validMessages)) : rng.pick(validMessages);
  const shape = rng.int(10);
  if (shape === 0) body = rng.bytes(rng.int(64));
  else if (shape === 1) body = frame(message, 0, message.length + 1 + rng.int(100));
  else if (shape === 2) {
    const encoding = rng.pick(["gzip", "deflate", "snappy", "identity", rng.printable(6)]);
    headers["grpc-encoding"] = encoding;
    body = frame(compress(rng, message, encoding), 1);
  } else if (shape === 3) body = frame(message, 1);
  else if (shape === 4) body = Buffer.concat([frame(message), frame(message)]);
  else if (shape === 5) body = Buffer.alloc(0);
  else body = frame(message);
  if (rng.chance(0.1)) headers["grpc-timeout"] = rng.pick(["abc", "1S", "99999999H", "-1m", "5m", rng.printable(4)]);
  return () =>
    new Promise((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session().request(headers);
      } catch {
        resolve("refused by the client library");
        return;
      }
      let code: string | undefined;
      const read = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) code = String(h["grpc-status"]);
      };
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve("streaming");
      }, 1_000);
      stream.on("response", read);
      stream.on("trailers", read);
      stream.on("data", () => undefined);
      stream.on("error", () => undefined);
      stream.on("close", () => {
        clearTimeout(timer);
        resolve(code === undefined ? "reset" : `grpc ${status[Number(code)] ?? code}`);
      });
      stream.end(body);
    });
}

const contentTypes = [
  "application/proto",
  "application/json",
  "application/connect+proto",
  "application/connect+json",
  "application/grpc-web+proto",
  "application/grpc-web",
  "application/grpc-web+json",
  "application/grpc-web-text",
  "application/grpc",
  "text/plain",
];

/** What an HTTP answer says: status and the Connect code or grpc-status it carries. */
function describeHttp(statusCode: number, headers: http.IncomingHttpHeaders, body: Buffer): string {
  const type = String(headers["content-type"] ?? "");
  let code = headers["grpc-status"] === undefined ? "" : `grpc-status ${headers["grpc-status"]}`;
  if (type.startsWith("application/json")) {
    try {
      code = String((JSON.parse(body.toString("utf8")) as { code?: string }).code ?? "");
    } catch {
      code = "unparsable";
    }
  } else if (type.startsWith("application/grpc-web") || type.startsWith("application/connect+")) {
    for (let offset = 0; offset + 5 <= body.length; ) {
      const flags = body.readUInt8(offset);
      const length = body.readUInt32BE(offset + 1);
      const data = body.subarray(offset + 5, offset + 5 + length).toString("latin1");
      if (flags & 0x80)
        code = /grpc-status:\s*(\d+)/.exec(data)?.[1] ? `grpc-status ${/grpc-status:\s*(\d+)/.exec(data)?.[1]}` : code;
      if (flags & 0x02) code = /"code":"([a-z_]+)"/.exec(data)?.[1] ?? "end-stream ok";
      offset += 5 + length;
    }
  }
  return `http ${statusCode}${code ? ` ${code}` : ""}`;
}

function httpCase(port: number, agent: http.Agent, rng: Rng, roomkey: Roomkey): Case {
  const path = rng.chance(0.95) ? rng.pick(methodPaths) : rng.pick(["/", "/x", "/roomkey.v1.Nope/Get"]);
  const headers: Record<string, string> = metadata(rng, roomkey);
  const contentType = rng.chance(0.95) ? rng.pick(contentTypes) : rng.printable(12);
  const message = rng.chance(0.6) ? mutate(rng, rng.pick(validMessages)) : rng.pick(validMessages);
  const json = contentType.includes("json");
  const payload = json ? (rng.chance(0.5) ? Buffer.from(rng.printable(rng.int(50))) : Buffer.from("{}")) : message;
  let method = rng.chance(0.9) ? "POST" : rng.pick(["GET", "PUT", "OPTIONS", "DELETE"]);
  let query = "";
  let body: Buffer | undefined;
  if (rng.chance(0.15)) {
    method = "GET";
    const params = new URLSearchParams();
    if (rng.chance(0.8)) params.set("connect", rng.pick(["v1", "v2", ""]));
    params.set("encoding", rng.pick(["proto", "json", "xml", ""]));
    if (rng.chance(0.5)) params.set("base64", rng.pick(["1", "0", "x"]));
    params.set(
      "message",
      rng.pick([
        payload.toString("base64url"),
        "!!not base64!!",
        rng.printable(rng.int(30)),
        "{}",
        compress(rng, payload, "gzip").toString("base64url"),
      ]),
    );
    if (rng.chance(0.3)) params.set("compression", rng.pick(["gzip", "br", "zstd", "identity"]));
    query = `?${params.toString()}`;
  } else {
    headers["content-type"] = contentType;
    const enveloped = contentType.includes("connect+") || contentType.includes("grpc");
    if (enveloped) {
      const encodingHeader = contentType.includes("connect+") ? "connect-content-encoding" : "grpc-encoding";
      const shape = rng.int(6);
      if (shape === 0) {
        const encoding = rng.pick(["gzip", "br", "snappy"]);
        headers[encodingHeader] = encoding;
        body = frame(compress(rng, payload, encoding), 1);
      } else if (shape === 1) body = frame(payload, 1);
      else if (shape === 2) body = frame(payload, rng.pick([0x02, 0x80, 0xff]));
      else if (shape === 3) body = Buffer.concat([frame(payload), frame(payload)]);
      else if (shape === 4) body = frame(payload, 0, payload.length + 10);
      else body = frame(payload);
    } else if (rng.chance(0.3)) {
      const encoding = rng.pick(["gzip", "br", "deflate", "snappy"]);
      headers["content-encoding"] = encoding;
      body = compress(rng, payload, encoding);
    } else {
      body = payload;
    }
    if (rng.chance(0.1)) headers["connect-timeout-ms"] = rng.pick(["abc", "-1", "99999999999", "10"]);
    if (rng.chance(0.1)) headers["connect-protocol-version"] = rng.pick(["1", "2", "x"]);
  }
  return () =>
    new Promise((resolve) => {
      const req = http.request(
        { host: "127.0.0.1", port, method, path: path + query, headers, agent, timeout: 5_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => resolve(describeHttp(res.statusCode ?? 0, res.headers, Buffer.concat(chunks))));
          res.on("error", () => resolve("http response cut"));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error) => resolve(error.message === "timeout" ? "http no answer" : "http connection closed"));
      req.end(body);
    });
}

/** Requests no HTTP client library sends: hostile Host headers, HTTP/1.0, broken request lines. */
function rawCase(port: number, rng: Rng, roomkey: Roomkey): Case {
  const path = rng.pick(methodPaths);
  const host = rng.pick([
    "a b",
    "",
    "127.0.0.1:99999",
    "[::1",
    "[::1]:80",
    "localhost",
    "ex ample.com:1",
    "%",
    rng.printable(20),
  ]);
  const auth = `Authorization: Bearer ${roomkey.adminKey}\r\nroomkey-environment: ${fuzzEnvironment}\r\n`;
  const request = rng.pick([
    `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/proto\r\nContent-Length: 0\r\n\r\n`,
    `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
    `POST ${path} HTTP/1.0\r\nContent-Type: application/proto\r\nContent-Length: 0\r\n\r\n`,
    `GET ${path}?encoding=proto&message=${encodeURIComponent(rng.printable(10))} HTTP/1.0\r\n\r\n`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/proto\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${rng.printable(5)}\r\n0\r\n\r\n`,
    `${rng.printable(20)}\r\n\r\n`,
    `POST ${path} HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n`,
  ]);
  return () =>
    new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => socket.destroy(), 5_000);
      socket.on("data", (chunk) => chunks.push(chunk));
      socket.on("error", () => undefined);
      socket.on("close", () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("latin1");
        const statusCode = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
        if (!statusCode) {
          resolve("raw connection closed");
          return;
        }
        const code = /"code":"([a-z_]+)"/.exec(text)?.[1];
        resolve(`http ${statusCode}${code ? ` ${code}` : ""}`);
      });
      socket.end(request);
    });
}

function isInternal(outcome: string): boolean {
  return /grpc INTERNAL|grpc-status 13|http 500|\binternal\b/.test(outcome);
}

export async function fuzz(roomkey: Roomkey, cases = 10_000, seed = 20261201): Promise<Outcome> {
  const rng = new Rng(seed);
  await roomkey.environments.unary(EnvironmentService.method.createEnvironment, {}, admin(roomkey, fuzzEnvironment));
  const errorsBefore = roomkey.errors().length;
  let session: http2.ClientHttp2Session | undefined;
  const sessionOf = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(`http://${roomkey.grpcAddress}`);
      session.on("error", () => undefined);
    }
    return session;
  };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const histogram = new Map<string, number>();
  const internal: string[] = [];
  const all: Case[] = Array.from({ length: cases }, (_, i) => {
    const port = i % 2 === 0 ? "grpc" : "http";
    if (port === "grpc") return grpcCase(sessionOf, rng, roomkey);
    return rng.chance(0.1) ? rawCase(roomkey.httpPort, rng, roomkey) : httpCase(roomkey.httpPort, agent, rng, roomkey);
  });
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < all.length) {
        const index = next++;
        const outcome = await (all[index] as Case)();
        histogram.set(outcome, (histogram.get(outcome) ?? 0) + 1);
        if (isInternal(outcome) && internal.length < 5) internal.push(`case ${index}: ${outcome}`);
      }
    }),
  );
  session?.close();
  agent.destroy();
  const logged = roomkey.errors().slice(errorsBefore);
  const internalCount = [...histogram.entries()].filter(([k]) => isInternal(k)).reduce((s, [, n]) => s + n, 0);
  const top = [...histogram.entries()].sort((x, y) => y[1] - x[1]);
  return {
    name: `fuzz: ${cases} requests on both ports (seed ${seed})`,
    ok: roomkey.alive() && internalCount === 0 && logged.length === 0,
    figures:
      `process up: ${roomkey.alive()}; ${((Date.now() - started) / 1000).toFixed(1)} s; INTERNAL/500: ${internalCount}${internal.length ? ` (${internal.join("; ")})` : ""}; ` +
      `errors logged: ${logged.length}${
        logged.length
          ? ` (${logged
              .slice(0, 3)
              .map((l) => `${l.msg}: ${String((l.err as { message?: string } | undefined)?.message ?? "")}`)
              .join("; ")})`
          : ""
      }; ` +
      `answers: ${top.map(([k, n]) => `${k}: ${n}`).join(", ")}`,
  };
}
