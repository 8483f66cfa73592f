import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { DescMethod, Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createConnectRouter,
  createContextValues,
} from "@connectrpc/connect";
import type { Compression, UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { parseContentType as parseConnectContentType } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { RoomkeyError } from "../domain/errors.js";
import type { CallContext } from "./call-context.js";
import { type Admission, admissionKey } from "./edge.js";
import { peerKey } from "./failure-throttle.js";
import { maxRequestBytes } from "./method-policy.js";
import { decodeRequest, malformedRequest, requestTooLarge } from "./request-decoding.js";

export interface HttpAdapterOptions {
  routes(router: ConnectRouter): void;
  /** The edge's admission of a call from its headers alone. */
  admit(method: DescMethod, headers: Headers, peer?: string): CallContext | Promise<CallContext>;
  /** The largest response message. */
  writeMaxBytes: number;
  shutdownSignal: AbortSignal;
  logger: Logger;
  /** Pages served beside the API on this port (the queue dashboard), each checking its own access. */
  pages?: PageRoute;
  /** Request paths (`/<service>/<method>`) a browser may call from another origin: connect-session methods. */
  corsPaths?: ReadonlySet<string>;
}

/** The request headers a browser may send cross-origin to a connect-session method. */
const corsAllowHeaders =
  "authorization, content-type, connect-protocol-version, connect-timeout-ms, roomkey-environment";

/**
 * A preflight for a connect-session method. It carries no credentials, so it
 * cannot tell whose session will call: it is answered for any origin, and
 * the call itself is refused (with no CORS headers, so the page cannot read
 * the refusal) unless its session allows the origin (edge.ts).
 */
function answerPreflight(req: IncomingMessage, res: ServerResponse, origin: string): void {
  res.writeHead(204, {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": "POST, GET",
    "access-control-allow-headers": corsAllowHeaders,
    "access-control-max-age": "600",
    vary: "Origin",
    "content-length": "0",
  });
  res.end();
  req.resume();
}

/** A call admitted with a connect session from one of its allowed origins may be read by that origin. */
function allowCrossOrigin(res: ServerResponse, call: CallContext, origin: string | null): void {
  if (origin === null || call.principal.kind !== "session" || !call.principal.session.allowedOrigins.has(origin))
    return;
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("vary", "Origin");
}

/** A handler for the request paths it matches. */
export interface PageRoute {
  matches(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

type Format = "binary" | "json";

/**
 * How a request carries its message, by protocol: a Connect unary body, a
 * Connect GET query, or one envelope (Connect streaming, gRPC-Web), each with
 * the header that names its compression.
 */
type Framing =
  | { kind: "unary"; format: Format; encodingHeader: "content-encoding" }
  | { kind: "get"; format: Format }
  | { kind: "envelope"; format: Format; encodingHeader: "connect-content-encoding" | "grpc-encoding" };

function framingOf(method: string, headers: Headers, url: URL): Framing | undefined {
  if (method === "GET") {
    const encoding = url.searchParams.get("encoding");
    if (encoding === "proto") return { kind: "get", format: "binary" };
    if (encoding === "json") return { kind: "get", format: "json" };
    return undefined;
  }
  if (method !== "POST") return undefined;
  const contentType = headers.get("content-type");
  const connect = parseConnectContentType(contentType);
  if (connect) {
    const format = connect.binary ? "binary" : "json";
    return connect.stream
      ? { kind: "envelope", format, encodingHeader: "connect-content-encoding" }
      : { kind: "unary", format, encodingHeader: "content-encoding" };
  }
  const grpcWeb = parseGrpcWebContentType(contentType);
  if (grpcWeb && !grpcWeb.text) {
    return { kind: "envelope", format: grpcWeb.binary ? "binary" : "json", encodingHeader: "grpc-encoding" };
  }
  return undefined;
}

const compressions: ReadonlyMap<string, Compression> = new Map([
  [compressionGzip.name, compressionGzip],
  [compressionBrotli.name, compressionBrotli],
]);

/** undefined: no compression; null: one this server does not support (Connect answers UNIMPLEMENTED). */
function compressionNamed(name: string | null): Compression | undefined | null {
  if (name === null || name === "" || name === "identity") return undefined;
  return compressions.get(name) ?? null;
}

async function decompress(compression: Compression, bytes: Uint8Array, limit: number): Promise<Uint8Array> {
  try {
    return await compression.decompress(bytes, limit);
  } catch (error) {
    if ((error as { code?: unknown }).code === Code.ResourceExhausted) throw requestTooLarge(limit);
    throw malformedRequest(`the ${compression.name} body does not decompress`);
  }
}

/** The client went away (or broke HTTP) while its body was read: no one is left to answer, nothing to log. */
function clientGone(): ConnectError {
  return new ConnectError("the client closed the request before its body was read", Code.Canceled);
}

/** Reads the whole body, refusing it once it is over `limit`: a declared length is refused unread. */
async function readBody(req: IncomingMessage, limit: number, tooLarge: RoomkeyError): Promise<Uint8Array> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw tooLarge;
      chunks.push(chunk);
    }
  } catch (error) {
    if (error === tooLarge) throw error;
    throw clientGone();
  }
  return Buffer.concat(chunks, size);
}

const envelopeHeaderBytes = 5;
const compressedFlag = 0b0000_0001;
const base64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** The one message of a request body made of envelopes (unary and server-streaming methods take one). */
function singleEnvelope(body: Uint8Array, limit: number): { compressed: boolean; data: Uint8Array } {
  if (body.byteLength < envelopeHeaderBytes) throw malformedRequest("incomplete envelope");
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const flags = view.getUint8(0);
  const length = view.getUint32(1);
  if (length > limit) throw requestTooLarge(limit);
  if (flags & ~compressedFlag) throw malformedRequest(`unexpected envelope flags 0x${flags.toString(16)}`);
  const end = envelopeHeaderBytes + length;
  if (end > body.byteLength) throw malformedRequest("incomplete envelope");
  if (end < body.byteLength) throw malformedRequest("more than one request message");
  return { compressed: (flags & compressedFlag) !== 0, data: body.subarray(envelopeHeaderBytes, end) };
}

/** What Connect parses in place of the real request: an empty message, which cannot fail to decode. */
function emptyMessage(format: Format): Uint8Array {
  return format === "binary" ? new Uint8Array(0) : new TextEncoder().encode("{}");
}

function emptyEnvelope(format: Format): Uint8Array {
  const data = emptyMessage(format);
  const envelope = new Uint8Array(envelopeHeaderBytes + data.byteLength);
  new DataView(envelope.buffer).setUint32(1, data.byteLength);
  envelope.set(data, envelopeHeaderBytes);
  return envelope;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/**
 * Reads, bounds, decompresses and decodes a request's one message; Connect
 * is then handed an empty stand-in (see `substitute`), so that every byte a
 * client sends is read by this code alone, after admission.
 */
async function readMessage(
  req: IncomingMessage,
  url: URL,
  headers: Headers,
  framing: Framing,
  method: DescMethod,
): Promise<Message> {
  const limit = maxRequestBytes(method);
  const tooLarge = requestTooLarge(limit);
  if (framing.kind === "get") {
    const message = url.searchParams.get("message") ?? "";
    let bytes: Uint8Array;
    if (url.searchParams.get("base64") === "1") {
      if (!base64.test(message)) throw malformedRequest("the message parameter is not base64");
      bytes = Buffer.from(message, "base64url");
    } else {
      bytes = new TextEncoder().encode(message);
    }
    const compression = compressionNamed(url.searchParams.get("compression"));
    if (compression === null) throw malformedRequest("unsupported compression");
    if (bytes.byteLength > limit) throw tooLarge;
    if (compression) bytes = await decompress(compression, bytes, limit);
    return decodeRequest(method.input, bytes, framing.format);
  }
  const compression = compressionNamed(headers.get(framing.encodingHeader));
  if (compression === null) throw malformedRequest("unsupported compression");
  if (framing.kind === "unary") {
    let bytes = await readBody(req, limit, tooLarge);
    if (compression) bytes = await decompress(compression, bytes, limit);
    return decodeRequest(method.input, bytes, framing.format);
  }
  const body = await readBody(req, limit + envelopeHeaderBytes, tooLarge);
  const envelope = singleEnvelope(body, limit);
  let bytes = envelope.data;
  if (envelope.compressed) {
    if (!compression)
      throw malformedRequest(`a message is flagged compressed but ${framing.encodingHeader} names none`);
    bytes = await decompress(compression, bytes, limit);
  }
  return decodeRequest(method.input, bytes, framing.format);
}

/**
 * The request Connect sees: the same call with an empty message in place of
 * the client's, and no request compression, so that Connect's own decoding
 * (which would answer INTERNAL for bytes it cannot parse) never meets client
 * bytes. The handler takes the real message, or the refusal, from the
 * context values.
 */
function substitute(base: UniversalServerRequest, url: URL, framing: Framing | undefined): UniversalServerRequest {
  if (!framing) return { ...base, body: once(new Uint8Array(0)) };
  if (framing.kind === "get") {
    const params = new URLSearchParams(url.searchParams);
    params.delete("base64");
    // An unsupported compression stays named: Connect answers it UNIMPLEMENTED, as for POST.
    if (compressionNamed(params.get("compression")) !== null) params.delete("compression");
    params.set("message", new TextDecoder().decode(emptyMessage(framing.format)));
    const substituted = new URL(url);
    substituted.search = params.toString();
    return { ...base, url: substituted.toString(), body: once(new Uint8Array(0)) };
  }
  const header = new Headers(base.header);
  // An unsupported compression stays named: Connect answers it UNIMPLEMENTED before reading.
  if (compressionNamed(header.get(framing.encodingHeader)) !== null) header.delete(framing.encodingHeader);
  header.delete("content-length");
  const body = framing.kind === "unary" ? emptyMessage(framing.format) : emptyEnvelope(framing.format);
  return { ...base, header, body: once(body) };
}

function answer(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ code, message });
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    connection: "close",
  });
  res.end(body);
}

/** A Host header `new URL()` can use; anything else (missing, empty, `a b`, `[::1`, a bad port) is refused. */
function authorityOf(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (host === undefined || host === "") return undefined;
  try {
    return new URL(`http://${host}`).host === "" ? undefined : host;
  } catch {
    return undefined;
  }
}

/**
 * The HTTP port's request handler: the Connect protocol and gRPC-Web from
 * connect-es, with roomkey reading every request itself. It admits a call
 * from its headers before reading its body, reads the body within the
 * method's size limit, decodes it without keeping unknown fields, and answers
 * input it cannot decode INVALID_ARGUMENT. Nothing a request carries can
 * throw out of it: a malformed Host is a 400, any fault a 500.
 */
export function createHttpHandler(options: HttpAdapterOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { logger } = options;
  const router = createConnectRouter({
    // gRPC needs HTTP/2 and has its own port; this port speaks Connect and gRPC-Web.
    grpc: false,
    acceptCompression: [compressionGzip, compressionBrotli],
    readMaxBytes: 1024,
    writeMaxBytes: options.writeMaxBytes,
    shutdownSignal: options.shutdownSignal,
  });
  options.routes(router);
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  /** The call each HTTP/1.1 connection is serving: the next one on it waits for it. */
  const inFlight = new WeakMap<Socket, Promise<void>>();

  async function serve(req: IncomingMessage, res: ServerResponse, handler: UniversalHandler): Promise<void> {
    const values: ContextValues = createContextValues();
    const base = universalRequestFromNodeRequest(req, res, undefined, values);
    const url = new URL(base.url);
    // A request Connect refuses by its method or content type (405, 415) is neither admitted nor read.
    const framing = handler.allowedMethods.includes(base.method) ? framingOf(base.method, base.header, url) : undefined;
    if (framing) {
      let admission: Admission;
      try {
        const admitted = options.admit(handler.method, base.header, peerKey(req.socket.remoteAddress));
        const call = admitted instanceof Promise ? await admitted : admitted;
        if (options.corsPaths?.has(url.pathname)) allowCrossOrigin(res, call, base.header.get("origin"));
        admission = { call, request: await readMessage(req, url, base.header, framing, handler.method) };
      } catch (error) {
        admission = { error };
      }
      values.set(admissionKey, admission);
    }
    // What is left of a body that was not read is not read: the connection closes after the answer.
    if (!req.complete) res.setHeader("connection", "close");
    const response = await handler(substitute(base, url, framing));
    // connect-node's writer waits for an "end" a ServerResponse never emits: the answer is done at
    // "finish" (written) or "close" (the client went away).
    let settled = false;
    const done = new Promise<void>((resolve) => {
      res.once("finish", resolve);
      res.once("close", resolve);
    }).then(() => {
      settled = true;
    });
    const writing = universalResponseToNodeResponse(response, res).catch((error: unknown) => {
      // Failing after the answer was done (or the client left): nobody is waiting for it any more.
      if (!settled) throw error;
      logger.debug({ err: error }, "HTTP answer failed after it was done");
    });
    await Promise.race([writing, done]);
  }

  return (req, res) => {
    try {
      const path = (req.url ?? "").split("?", 1)[0] ?? "";
      const handler = handlers.get(path);
      if (!handler && options.pages?.matches(path)) {
        options.pages.handle(req, res);
        return;
      }
      if (!handler) {
        res.writeHead(404);
        res.end();
        return;
      }
      const origin = req.headers.origin;
      if (req.method === "OPTIONS" && origin !== undefined && options.corsPaths?.has(path)) {
        answerPreflight(req, res, origin);
        return;
      }
      if (authorityOf(req) === undefined) {
        answer(res, 400, "invalid_argument", "the Host header is missing or is not a valid host[:port]");
        return;
      }
      const run = () =>
        serve(req, res, handler).catch((error: unknown) => {
          // Writing to a client that went away is connect-es's Aborted: not a fault of roomkey's.
          if (ConnectError.from(error).code === Code.Aborted || res.destroyed) {
            logger.debug({ err: error }, "HTTP client went away");
            res.destroy();
            return;
          }
          logger.error({ err: error }, "HTTP request failed");
          answer(res, 500, "internal", "internal error");
        });
      // One call at a time per connection: a pipelined request waits, unread, until the one
      // before it has been answered (its unread body stops the socket being read further).
      const socket = req.socket;
      const before = inFlight.get(socket);
      const current = before ? before.then(run) : run();
      inFlight.set(socket, current);
      current.finally(() => {
        if (inFlight.get(socket) === current) inFlight.delete(socket);
      });
    } catch (error) {
      logger.error({ err: error }, "HTTP request failed");
      answer(res, 500, "internal", "internal error");
    }
  };
}
