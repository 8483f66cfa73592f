/**
 * The Node/TypeScript client of roomkey, exported as `roomkey/client`: the
 * generated services and messages of `roomkey.v1`, plus what every call needs,
 * and nothing more: `createRoomkeyClient` (connect-es `createClient` over a
 * gRPC transport, with an interceptor that sends `roomkey-environment` and
 * `authorization` on every call) and `errorOf`, which reads an error's reason,
 * metadata and field violations.
 *
 *   const tokens = createRoomkeyClient(TokenService, { environment: "staging", token: secret });
 *
 * For the Connect protocol or gRPC-Web (port 8080), put `roomkeyInterceptor`
 * on a transport of your own and pass it to connect-es `createClient`.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type BadRequest_FieldViolation,
  BadRequestSchema,
  ErrorInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { ErrorReason, ErrorReasonSchema } from "../gen/roomkey/v1/error_reason_pb.js";

export * from "../gen/roomkey/v1/account_service_pb.js";
export * from "../gen/roomkey/v1/common_pb.js";
export * from "../gen/roomkey/v1/connect_sessions_pb.js";
export * from "../gen/roomkey/v1/environment_service_pb.js";
export * from "../gen/roomkey/v1/error_reason_pb.js";
export * from "../gen/roomkey/v1/promotion_pb.js";
export * from "../gen/roomkey/v1/token_service_pb.js";
export * from "../gen/roomkey/v1/webhooks_pb.js";
export * from "./webhooks.js";
export type { BadRequest_FieldViolation };
export { Code, ConnectError };

/** The environment variables read for options left out. */
export const ENV_ADDR = "ROOMKEY_ADDR";
export const ENV_ENVIRONMENT = "ROOMKEY_ENVIRONMENT";
export const ENV_TOKEN = "ROOMKEY_TOKEN";
/** Where roomkey serves native gRPC on local defaults. */
export const DEFAULT_ADDR = "localhost:50051";
/** The domain of the ErrorInfo detail in roomkey's errors. */
export const ERROR_DOMAIN = "roomkey.dev";

export interface RoomkeyOptions {
  /**
   * `host:port` or `http://host:port` for plaintext (as roomkey serves it), or
   * `https://host[:port]` for TLS. Default `ROOMKEY_ADDR`, else localhost:50051.
   */
  addr?: string;
  /** Sent as `roomkey-environment`. Default `ROOMKEY_ENVIRONMENT`. */
  environment?: string;
  /** An API token's secret or the admin key. Default `ROOMKEY_TOKEN`. */
  token?: string;
}

/**
 * Sends `roomkey-environment` and `authorization: Bearer <token>` on every
 * call that does not set its own (`{ headers: { "roomkey-environment": "qa" } }`
 * in the call options wins, so one client can act on several environments).
 */
export function roomkeyInterceptor(environment: string, token: string): Interceptor {
  return (next) => (request) => {
    if (!request.header.has("roomkey-environment")) request.header.set("roomkey-environment", environment);
    if (!request.header.has("authorization")) request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
}

/**
 * Reads an address as `createRoomkeyClient` does: `host:port` or
 * `http://host:port` (plaintext), or `https://host[:port]` (TLS, port 443 if
 * left out). Returns the gRPC target and whether to use TLS; anything else
 * (another scheme, a path, a query, user info, a missing or bad port) throws.
 */
export function parseAddr(addr: string): { target: string; tls: boolean } {
  const bad = () =>
    new Error(`roomkey: address ${JSON.stringify(addr)}: want host:port, http://host:port or https://host[:port]`);
  let url: URL;
  try {
    url = new URL(addr.includes("://") ? addr : `http://${addr}`);
  } catch {
    throw bad();
  }
  const tls = url.protocol === "https:";
  if (!tls && url.protocol !== "http:") throw bad();
  if (url.username || url.password || (url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) {
    throw bad();
  }
  if (addr.includes("?") || addr.includes("#") || url.hostname === "") throw bad();
  // URL drops a port that is the scheme's default, so `:80` and `:443` are read from the text.
  let port = url.port;
  if (port === "") {
    const written = /:(\d+)\/?$/.exec(addr)?.[1];
    if (written !== undefined) port = written;
    else if (tls && !/:\/?$/.test(addr)) port = "443";
    else throw bad();
  }
  return { target: `${url.hostname}:${port}`, tls };
}

/** A client of `service` whose every call carries the environment and the token. */
export function createRoomkeyClient<T extends DescService>(service: T, options: RoomkeyOptions = {}): Client<T> {
  const environment = options.environment || process.env[ENV_ENVIRONMENT];
  const token = options.token || process.env[ENV_TOKEN];
  if (!environment) throw new Error(`roomkey: no environment: pass environment or set ${ENV_ENVIRONMENT}`);
  if (!token) throw new Error(`roomkey: no token: pass token or set ${ENV_TOKEN}`);
  const { target, tls } = parseAddr(options.addr || process.env[ENV_ADDR] || DEFAULT_ADDR);
  const transport = createGrpcTransport({
    baseUrl: `${tls ? "https" : "http"}://${target}`,
    interceptors: [roomkeyInterceptor(environment, token)],
  });
  return createClient(service, transport);
}

/** A roomkey error as a caller branches on it. */
export interface RoomkeyError {
  /** The status code. */
  code: Code;
  /** The message, for people; do not branch on it. */
  message: string;
  /**
   * The stable reason, or `ErrorReason.UNSPECIFIED` when the error did not come
   * from roomkey or carries a reason newer than this client (`reasonName` still
   * has it then).
   */
  reason: ErrorReason;
  /** The reason as the server sent it in ErrorInfo, such as `TOKEN_WRONG_ENVIRONMENT`; empty when there is none. */
  reasonName: string;
  /** The ErrorInfo's metadata, such as `token_environment`. */
  metadata: Record<string, string>;
  /** The BadRequest detail's violations: which field (or metadata header) was wrong, and why. */
  fieldViolations: BadRequest_FieldViolation[];
}

/** Reads an error thrown by a roomkey call; undefined for anything that is not a ConnectError. */
export function errorOf(error: unknown): RoomkeyError | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  const info = error.findDetails(ErrorInfoSchema).find((detail) => detail.domain === ERROR_DOMAIN);
  const known = info?.reason ? ErrorReasonSchema.values.find((value) => value.localName === info.reason) : undefined;
  const reason: ErrorReason = known?.number ?? ErrorReason.UNSPECIFIED;
  return {
    code: error.code,
    message: error.rawMessage,
    reason,
    reasonName: info?.reason ?? "",
    metadata: { ...info?.metadata },
    fieldViolations: error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations),
  };
}
