import type { EventEmitter } from "node:events";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, createContextValues, type HandlerContext } from "@connectrpc/connect";

export interface GrpcContextInit {
  service: DescService;
  method: DescMethod;
  url: string;
  requestHeader: Headers;
  /** Absolute deadline in epoch milliseconds, if the client set one. */
  deadline: number | undefined;
  /** The grpc-js call: it emits `cancelled` when the client goes away. */
  call: Pick<EventEmitter, "once">;
  shutdownSignal: AbortSignal;
}

/** A handler context and the function that releases it when the call is over. */
export interface GrpcCallContext {
  context: HandlerContext;
  end(): void;
}

const maxTimerMs = 2 ** 31 - 1;

/** Shared abort reasons: no DOMException and stack trace per call. */
const ended = new Error("call ended");
const cancelled = new ConnectError("the client cancelled the call", Code.Canceled);

/**
 * A connect-es HandlerContext for a grpc-js call that costs nothing until a
 * handler asks for it: the abort signal (with its shutdown listener and
 * deadline timer) and the response headers are created on first use. Unary
 * handlers mostly never touch them; streams do, and then behave exactly like
 * connect-es's own context (aborted on cancel, deadline and shutdown).
 */
export function createGrpcContext(init: GrpcContextInit): GrpcCallContext {
  const { shutdownSignal, deadline } = init;
  let controller: AbortController | undefined;
  let reason: unknown;
  let timer: NodeJS.Timeout | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  let values: ContextValues | undefined;

  const onShutdown = () => abort(shutdownSignal.reason);

  function release(): void {
    clearTimeout(timer);
    shutdownSignal.removeEventListener("abort", onShutdown);
  }

  function abort(why: unknown): void {
    if (reason !== undefined) return;
    reason = why;
    release();
    controller?.abort(why);
  }

  function signal(): AbortSignal {
    if (controller) return controller.signal;
    controller = new AbortController();
    if (reason !== undefined) {
      controller.abort(reason);
    } else if (shutdownSignal.aborted) {
      abort(shutdownSignal.reason);
    } else {
      shutdownSignal.addEventListener("abort", onShutdown, { once: true });
      // Node fires a timer of more than 2^31-1 ms at once: a deadline that far away is no deadline.
      const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
      if (remaining !== undefined && remaining <= maxTimerMs) {
        timer = setTimeout(
          () => abort(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)),
          remaining,
        );
      }
    }
    return controller.signal;
  }

  init.call.once("cancelled", () => abort(cancelled));

  const context: HandlerContext = {
    service: init.service,
    method: init.method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: init.url,
    requestHeader: init.requestHeader,
    get signal() {
      return signal();
    },
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    get responseHeader() {
      responseHeader ??= new Headers();
      return responseHeader;
    },
    get responseTrailer() {
      responseTrailer ??= new Headers();
      return responseTrailer;
    },
    get values() {
      values ??= createContextValues();
      return values;
    },
  };
  return { context, end: () => abort(ended) };
}
