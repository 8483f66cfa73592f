import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { settlesWithin } from "../async.js";
import type { CallContext } from "./call-context.js";
import { type GrpcAdapterOptions, grpcService } from "./grpc/grpc-adapter.js";
import { grpcAdmission, metadataCap, undecodableAsInvalidArgument } from "./grpc/grpc-interceptors.js";
import { createHttpHandler, type PageRoute } from "./http-adapter.js";
import { largestRequestBytes } from "./method-policy.js";
import { addReflection } from "./reflection.js";

/** Admits a call from its metadata alone (the edge's `admit`), before its body is read. */
export type Admit = (method: DescMethod, headers: Headers, peer?: string) => CallContext | Promise<CallContext>;

/** A service with its (edge-wrapped) implementation, ready for either transport. */
export interface ServiceBinding {
  service: DescService;
  connect(router: ConnectRouter): void;
  grpc(options: GrpcAdapterOptions): [ServiceDefinition, UntypedServiceImplementation];
}

export function bindService<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceBinding {
  return {
    service,
    connect: (router) => router.service(service, impl),
    grpc: (options) => grpcService(service, impl, options),
  };
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  bindings: readonly ServiceBinding[];
  admit: Admit;
  health: HealthImplementation;
  /** The largest response message. Requests are bounded per method (method-policy.ts). */
  maxMessageBytes: number;
  maxMetadataBytes: number;
  /** Calls one HTTP/2 connection may have open at once. */
  maxConcurrentStreams: number;
  logger: Logger;
  shutdownSignal: AbortSignal;
}

/** Native gRPC (HTTP/2) on grpc-js: roomkey's services, health checking and reflection. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<{ server: Server; port: number }> {
  const { logger } = options;
  const admission = grpcAdmission({
    methods: options.bindings.flatMap((b) => b.service.methods),
    admit: options.admit,
    logger,
  });
  const server = new Server({
    // grpc-js buffers no request larger than the largest any method takes; each method has its own limit.
    "grpc.max_receive_message_length": largestRequestBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams,
    "grpc.keepalive_permit_without_calls": 1,
    // The first interceptor receives grpc-js's own call: see undecodableAsInvalidArgument.
    interceptors: [
      undecodableAsInvalidArgument(logger),
      metadataCap(options.maxMetadataBytes, logger),
      admission.interceptor,
    ],
  });
  for (const binding of options.bindings) {
    const [definition, handlers] = binding.grpc({
      logger,
      shutdownSignal: options.shutdownSignal,
      admitted: admission.admitted,
    });
    server.addService(definition, handlers);
  }
  options.health.addToServer(server);
  addReflection(
    server,
    options.bindings.map((b) => b.service),
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return { server, port };
}

/**
 * A request Node's HTTP parser refuses (a header with NUL or another forbidden
 * character, an oversized header) never reaches a handler. Answer it the way
 * the Connect protocol answers errors, so clients see INVALID_ARGUMENT (or
 * RESOURCE_EXHAUSTED) instead of a bare 400.
 */
function answerMalformedRequest(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || !error.code?.startsWith("HPE_")) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === "HPE_HEADER_OVERFLOW";
  const body = JSON.stringify({
    code: tooLarge ? "resource_exhausted" : "invalid_argument",
    message: tooLarge
      ? "request headers are larger than this server accepts"
      : "malformed HTTP request: a header holds a character HTTP forbids (such as NUL) or is malformed",
  });
  socket.end(
    `HTTP/1.1 ${tooLarge ? 431 : 400} ${tooLarge ? "Request Header Fields Too Large" : "Bad Request"}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface HttpServerOptions {
  host: string;
  port: number;
  bindings: readonly ServiceBinding[];
  admit: Admit;
  /** The largest response message. Requests are bounded per method (method-policy.ts). */
  maxMessageBytes: number;
  maxHeaderBytes: number;
  logger: Logger;
  shutdownSignal: AbortSignal;
  /** Pages served beside the API (the queue dashboard, the hosted connect page). */
  pages?: PageRoute;
  /** Methods a browser may call from another origin (connect sessions'): `/<service>/<method>`. */
  corsPaths?: ReadonlySet<string>;
}

/** A request's headers must arrive within this, and the whole request within `requestTimeoutMs`. */
const headersTimeoutMs = 10_000;
const requestTimeoutMs = 30_000;
/**
 * Requests one keep-alive connection carries before Node closes it: pipelined
 * requests wait their turn (one call at a time per connection), and this
 * bounds how many can wait. Clients reconnect transparently.
 */
const maxRequestsPerSocket = 256;

/** The Connect protocol and gRPC-Web over HTTP/1.1, from the same implementations. */
export async function startHttpServer(options: HttpServerOptions): Promise<{ server: http.Server; port: number }> {
  const handler = createHttpHandler({
    routes: (router) => {
      for (const binding of options.bindings) binding.connect(router);
    },
    admit: options.admit,
    writeMaxBytes: options.maxMessageBytes,
    shutdownSignal: options.shutdownSignal,
    logger: options.logger,
    ...(options.pages ? { pages: options.pages } : {}),
    ...(options.corsPaths ? { corsPaths: options.corsPaths } : {}),
  });
  const server = http.createServer(
    { maxHeaderSize: options.maxHeaderBytes, headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs },
    handler,
  );
  server.maxRequestsPerSocket = maxRequestsPerSocket;
  server.on("clientError", answerMalformedRequest);
  return { server, port: await listen(server, options.port, options.host) };
}

/** Starts `server` listening; resolves with the port it got (port 0: one the OS chose), rejects when it cannot (in use). */
export async function listen(server: http.Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Both transports, closed together. */
export interface Transports {
  grpcPort: number;
  httpPort: number;
  /**
   * Stops accepting calls at once, lets calls in flight finish (`idle`), gives
   * their responses a moment to flush, then closes every connection. Resolves
   * true when in-flight calls finished within `budgetMs`.
   */
  close(idle: () => Promise<void>, budgetMs: number): Promise<boolean>;
}

/** How long closed connections may take to flush after the last call finished. */
const flushMs = 1_000;

export async function startTransports(
  grpcOptions: GrpcServerOptions,
  httpOptions: HttpServerOptions,
): Promise<Transports> {
  const grpc = await startGrpcServer(grpcOptions);
  const http = await startHttpServer(httpOptions);
  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    async close(idle, budgetMs) {
      const started = Date.now();
      const grpcClosed = new Promise<void>((resolve) => grpc.server.tryShutdown(() => resolve()));
      const httpClosed = new Promise<void>((resolve) => http.server.close(() => resolve()));
      http.server.closeIdleConnections();
      const drained = await settlesWithin(idle(), budgetMs);
      http.server.closeIdleConnections();
      // Long-lived streams we do not own (health Watch) would hold this open: bounded.
      const left = Math.max(0, budgetMs - (Date.now() - started));
      await settlesWithin(Promise.all([grpcClosed, httpClosed]), Math.min(flushMs, left));
      grpc.server.forceShutdown();
      http.server.closeAllConnections();
      return drained;
    },
  };
}
