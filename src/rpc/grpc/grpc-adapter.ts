import { once } from "node:events";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import type { ConnectError, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  Metadata as GrpcMetadata,
  type Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type StatusObject,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { Logger } from "pino";
import { RoomkeyError } from "../../domain/errors.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import type { CallContext } from "../call-context.js";
import { admissionKey } from "../edge.js";
import { statusOf, toConnectError } from "../errors.js";
import { maxRequestBytes } from "../method-policy.js";
import { decodeRequest, requestTooLarge } from "../request-decoding.js";
import { createGrpcContext, type GrpcCallContext } from "./grpc-context.js";
import { MetadataHeaders } from "./metadata-headers.js";

/** A request as grpc-js hands it over: its bytes, decoded only once the call is admitted. */
type Encoded = Buffer;

function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** Encodings of frozen messages: a handler that answers with the same frozen message pays for it once. */
const encoded = new WeakMap<Message, Buffer>();

function serialize(desc: DescMessage) {
  return (message: Message) => {
    if (!Object.isFrozen(message)) return Buffer.from(toBinary(desc, message));
    let bytes = encoded.get(message);
    if (!bytes) {
      bytes = Buffer.from(toBinary(desc, message));
      encoded.set(message, bytes);
    }
    return bytes;
  };
}

/** grpc-js method definitions for clients: protobuf-es messages in and out. */
export function grpcClientDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: methodPath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serialize(method.input),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: serialize(method.output),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.name,
    };
  }
  return definition;
}

/**
 * Server definitions hand the handler the request's bytes: grpc-js would
 * decode them before any interceptor or handler could check who is calling,
 * and a malformed request would be INTERNAL instead of INVALID_ARGUMENT.
 */
function serverDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const [name, entry] of Object.entries(grpcClientDefinition(service))) {
    definition[name] = { ...entry, requestDeserialize: (bytes: Buffer): Encoded => bytes };
  }
  return definition;
}

/** The size of request metadata as the cap counts it: keys and values, binary values in bytes. */
export function metadataSize(metadata: Metadata): number {
  let size = 0;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) size += key.length + value.length;
  }
  return size;
}

type GrpcStatus = Pick<StatusObject, "code" | "details" | "metadata">;

/** The grpc-js status of each frozen error, encoded once (grpc-js only reads it). */
const frozenStatuses = new WeakMap<ConnectError, GrpcStatus>();

/** A status for grpc-js, with `grpc-status-details-bin` carrying the error's details. */
export function serviceError(error: ConnectError): GrpcStatus {
  if (!Object.isFrozen(error)) return encodeStatus(error);
  let status = frozenStatuses.get(error);
  if (!status) {
    status = encodeStatus(error);
    frozenStatuses.set(error, status);
  }
  return status;
}

function encodeStatus(error: ConnectError): GrpcStatus {
  const metadata = new GrpcMetadata();
  metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, statusOf(error))));
  // gRPC and Connect share the numeric status codes.
  const code: number = error.code;
  return { code, details: error.rawMessage, metadata };
}

function shuttingDown(): RoomkeyError {
  return new RoomkeyError("unavailable", "SHUTTING_DOWN", "the server is shutting down; reconnect to another replica");
}

/** Response headers a handler set, sent as the call's initial metadata (before any message or status). */
function sendHeaders(call: { sendMetadata(metadata: Metadata): void }, ctx: GrpcCallContext | undefined): void {
  const headers = ctx?.headersSet();
  if (!headers) return;
  const metadata = new GrpcMetadata();
  headers.forEach((value, key) => {
    metadata.set(key, value);
  });
  call.sendMetadata(metadata);
}

export interface GrpcAdapterOptions {
  logger: Logger;
  /** Aborted when the server begins to shut down: streams end, unary calls finish. */
  shutdownSignal: AbortSignal;
  /**
   * The call the admission interceptor admitted from this metadata before
   * grpc-js read the body. Without one the edge admits the call in the
   * handler, after decoding (unit tests that serve the adapter alone).
   */
  admitted?(metadata: Metadata): CallContext | undefined;
}

/**
 * Serves a protobuf-es service implementation (the same one the Connect
 * router serves) on a grpc-js server. Returns what `server.addService` takes.
 */
export function grpcService<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  options: GrpcAdapterOptions,
): [ServiceDefinition, UntypedServiceImplementation] {
  const table = impl as unknown as Record<string, (req: Message, ctx: HandlerContext) => unknown>;
  const handlers: UntypedServiceImplementation = {};
  const fail = (error: unknown) => serviceError(toConnectError(error, options.logger));

  function contextOf(
    method: DescMethod,
    call: ServerUnaryCall<Encoded, Message> | ServerWritableStream<Encoded, Message>,
  ): GrpcCallContext {
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    return createGrpcContext({
      service,
      method,
      url: methodPath(method),
      requestHeader: new MetadataHeaders(call.metadata),
      deadline: Number.isFinite(deadlineMs) ? deadlineMs : undefined,
      call,
      shutdownSignal: options.shutdownSignal,
    });
  }

  /** Decodes the request within the method's size limit, and hands the edge what the interceptor admitted. */
  function decoded(
    method: DescMethod,
    call: { request: Encoded; metadata: Metadata },
    context: HandlerContext,
  ): Message {
    const limit = maxRequestBytes(method);
    if (call.request.length > limit) throw requestTooLarge(limit);
    const request = decodeRequest(method.input, call.request, "binary");
    const admitted = options.admitted?.(call.metadata);
    if (admitted) context.values.set(admissionKey, { call: admitted, request });
    return request;
  }

  for (const method of service.methods) {
    const fn = table[method.localName];
    if (!fn) throw new Error(`${service.typeName}/${method.name} has no implementation`);
    const run = fn.bind(impl);
    if (method.methodKind === "unary") {
      handlers[method.localName] = (call: ServerUnaryCall<Encoded, Message>, callback: sendUnaryData<Message>) => {
        let ctx: GrpcCallContext | undefined;
        const succeed = (response: unknown) => {
          let message: Message;
          try {
            message = create(method.output, response as Parameters<typeof create>[1]);
          } catch (error) {
            failed(error);
            return;
          }
          sendHeaders(call, ctx);
          callback(null, message);
          ctx?.end();
        };
        const failed = (error: unknown) => {
          sendHeaders(call, ctx);
          callback(fail(error));
          ctx?.end();
        };
        try {
          ctx = contextOf(method, call);
          const result = run(decoded(method, call, ctx.context), ctx.context);
          // A handler that answered without I/O is answered at once.
          if (result instanceof Promise) result.then(succeed, failed);
          else succeed(result);
        } catch (error) {
          failed(error);
        }
      };
    } else if (method.methodKind === "server_streaming") {
      handlers[method.localName] = (call: ServerWritableStream<Encoded, Message>) => {
        let ctx: GrpcCallContext | undefined;
        let headersSent = false;
        const stream = async () => {
          ctx = contextOf(method, call);
          const { context } = ctx;
          const request = decoded(method, call, context);
          for await (const response of run(request, context) as AsyncIterable<Parameters<typeof create>[1]>) {
            if (context.signal.aborted) break;
            if (!headersSent) {
              headersSent = true;
              sendHeaders(call, ctx);
            }
            if (!call.write(create(method.output, response))) {
              await once(call, "drain", { signal: context.signal });
            }
          }
        };
        const finish = (error?: unknown) => {
          if (!headersSent && !call.cancelled) {
            headersSent = true;
            sendHeaders(call, ctx);
          }
          ctx?.end();
          if (call.cancelled) return;
          if (options.shutdownSignal.aborted) error = shuttingDown();
          // Emitting `error` sends the status; destroying the call would leave the client hanging.
          if (error === undefined) call.end();
          else call.emit("error", fail(error));
        };
        stream().then(() => finish(), finish);
      };
    } else {
      throw new Error(`${service.typeName}/${method.name}: ${method.methodKind} is not supported`);
    }
  }
  return [serverDefinition(service), handlers];
}
