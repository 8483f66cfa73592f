import type { DescMethod } from "@bufbuild/protobuf";
import { Metadata, ServerInterceptingCall, type ServerInterceptor, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { RoomkeyError } from "../../domain/errors.js";
import { requestIdHeader } from "../audit-calls.js";
import type { CallContext } from "../call-context.js";
import { toConnectError } from "../errors.js";
import { peerKey } from "../failure-throttle.js";
import { malformedRequest } from "../request-decoding.js";
import { metadataSize, serviceError } from "./grpc-adapter.js";
import { MetadataHeaders } from "./metadata-headers.js";

/**
 * Caps request metadata for every service on the gRPC port, health and
 * reflection included: grpc-js has no option for it. A call over the cap is
 * answered RESOURCE_EXHAUSTED before any handler runs.
 */
export function metadataCap(maxBytes: number, logger: Logger): ServerInterceptor {
  const refusal = () =>
    serviceError(
      toConnectError(
        new RoomkeyError("resource_exhausted", "METADATA_TOO_LARGE", `request metadata exceeds ${maxBytes} bytes`),
        logger,
      ),
    );
  return (_method, call) => {
    const intercepted: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            if (metadataSize(metadata) > maxBytes) intercepted.sendStatus(refusal());
            else proceed(metadata);
          },
        }),
    });
    return intercepted;
  };
}

/**
 * Statuses grpc-js sends by itself when it cannot read a request, on every
 * service of the port (health and reflection included), and what roomkey
 * answers instead: the client's bytes are at fault, so INVALID_ARGUMENT,
 * never INTERNAL (docs/guide.md "Hostile and undecodable input").
 */
const libraryStatuses: readonly { code: status; details: RegExp }[] = [
  { code: status.INTERNAL, details: /^Failed to decompress message/ },
  { code: status.INTERNAL, details: /^Error deserializing request/ },
  { code: status.INTERNAL, details: /^Invalid grpc-timeout value/ },
  { code: status.UNIMPLEMENTED, details: /^Received (a second request message|no request message)/ },
];

/**
 * Rewrites grpc-js's own statuses for undecodable requests. grpc-js sends
 * them from the innermost call (the one the first interceptor receives),
 * past every interceptor's responder, so this decorates that call's
 * `sendStatus`. It must be the first interceptor; grpc-js is pinned and a
 * test sends each case.
 */
export function undecodableAsInvalidArgument(logger: Logger): ServerInterceptor {
  return (_method, call) => {
    const send = call.sendStatus.bind(call);
    call.sendStatus = (sent) => {
      const rewrite = libraryStatuses.some((s) => s.code === sent.code && s.details.test(sent.details));
      send(rewrite ? serviceError(toConnectError(malformedRequest(sent.details), logger)) : sent);
    };
    return new ServerInterceptingCall(call);
  };
}

export interface GrpcAdmission {
  interceptor: ServerInterceptor;
  /** The call admitted from this metadata, for the handler. */
  admitted(metadata: Metadata): CallContext | undefined;
}

/**
 * Admits calls to roomkey's services from their metadata alone, before
 * grpc-js reads the request body: a caller without credentials or with an
 * unknown environment is answered at once and its body is never read (grpc-js
 * only resumes the stream once metadata has passed every interceptor).
 * Health checking and reflection need no admission.
 */
export function grpcAdmission(deps: {
  methods: readonly DescMethod[];
  admit(method: DescMethod, headers: Headers, peer?: string): CallContext | Promise<CallContext>;
  logger: Logger;
}): GrpcAdmission {
  const byPath = new Map(deps.methods.map((m) => [`/${m.parent.typeName}/${m.name}`, m]));
  const admitted = new WeakMap<Metadata, CallContext>();
  const interceptor: ServerInterceptor = (descriptor, call) => {
    const method = byPath.get(descriptor.path);
    if (!method) return new ServerInterceptingCall(call);
    const intercepted: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            const refuse = (error: unknown) => {
              // The request id the edge settled (the caller's, or one it made) goes back with the refusal.
              const [requestId] = metadata.get(requestIdHeader);
              if (typeof requestId === "string") {
                const headers = new Metadata();
                headers.set(requestIdHeader, requestId);
                intercepted.sendMetadata(headers);
              }
              intercepted.sendStatus(serviceError(toConnectError(error, deps.logger)));
            };
            const accept = (context: CallContext) => {
              admitted.set(metadata, context);
              proceed(metadata);
            };
            let result: CallContext | Promise<CallContext>;
            try {
              result = deps.admit(
                method,
                new MetadataHeaders(metadata),
                peerKey(call.getConnectionInfo().remoteAddress),
              );
            } catch (error) {
              refuse(error);
              return;
            }
            if (result instanceof Promise) result.then(accept, refuse);
            else accept(result);
          },
        }),
    });
    return intercepted;
  };
  return { interceptor, admitted: (metadata) => admitted.get(metadata) };
}
