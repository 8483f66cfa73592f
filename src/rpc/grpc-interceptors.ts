import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { RoomkeyError } from "../domain/errors.js";
import { toConnectError } from "./errors.js";
import { metadataSize, serviceError } from "./grpc-adapter.js";

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
