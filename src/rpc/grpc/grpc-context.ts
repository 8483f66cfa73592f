import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, createContextValues, type HandlerContext } from "@connectrpc/connect";

export interface GrpcContextInit {
  service: DescService;
  method: DescMethod;
  url: string;
  requestHeader: Headers;
  /** Absolute deadline in epoch milliseconds, if the client set one. */
  deadline: number | undefined;
  /** The grpc-js call: `cancelled` once the client went away; it emits `cancelled` then. */
  call: { readonly cancelled: boolean; once(event: "cancelled", listener: () => void): unknown };
  shutdownSignal: AbortSignal;
}

/** A handler context and the function that releases it when the call is over. */
export interface GrpcCallContext {
  context: HandlerContext;
  /** The response headers a handler set, or undefined when it set none (nothing to send). */
  headersSet(): Headers | undefined;
  end(): void;
}

const maxTimerMs = 2 ** 31 - 1;

/** Shared abort reasons: no DOMException and stack trace per call. */
const ended = new Error("call ended");
const cancelled = new ConnectError("the client cancelled the call", Code.Canceled);

/**
 * A connect-es HandlerContext for a grpc-js call that costs nearly nothing
 * until a handler asks for more: the abort signal (with its cancel and
 * shutdown listeners and deadline timer) and the response headers are made on
 * first use. Unary handlers mostly never touch them; streams do, and then the
 * signal behaves like connect-es's own (aborted on cancel, deadline and
 * shutdown). A class, so that a call allocates one object, not a set of
 * closures.
 */
class GrpcHandlerContext implements HandlerContext, GrpcCallContext {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly url: string;
  readonly requestHeader: Headers;
  private readonly init: GrpcContextInit;
  private controller: AbortController | undefined;
  private reason: unknown;
  private timer: NodeJS.Timeout | undefined;
  private headers: Headers | undefined;
  private trailers: Headers | undefined;
  private contextValues: ContextValues | undefined;
  /** Made with the signal: most calls never need it. */
  private onAbort: (() => void) | undefined;

  constructor(init: GrpcContextInit) {
    this.init = init;
    this.service = init.service;
    this.method = init.method;
    this.url = init.url;
    this.requestHeader = init.requestHeader;
  }

  get context(): HandlerContext {
    return this;
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const controller = new AbortController();
    this.controller = controller;
    const { call, shutdownSignal, deadline } = this.init;
    if (this.reason !== undefined) controller.abort(this.reason);
    else if (call.cancelled) this.abort(cancelled);
    else if (shutdownSignal.aborted) this.abort(shutdownSignal.reason);
    else {
      const onAbort = () => this.abort(call.cancelled ? cancelled : shutdownSignal.reason);
      this.onAbort = onAbort;
      call.once("cancelled", onAbort);
      shutdownSignal.addEventListener("abort", onAbort, { once: true });
      // Node fires a timer of more than 2^31-1 ms at once: a deadline that far away is no deadline.
      const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
      if (remaining !== undefined && remaining <= maxTimerMs) {
        this.timer = setTimeout(
          () => this.abort(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)),
          remaining,
        );
      }
    }
    return controller.signal;
  }

  timeoutMs(): number | undefined {
    return this.init.deadline === undefined ? undefined : this.init.deadline - Date.now();
  }

  get responseHeader(): Headers {
    this.headers ??= new Headers();
    return this.headers;
  }

  headersSet(): Headers | undefined {
    return this.headers;
  }

  get responseTrailer(): Headers {
    this.trailers ??= new Headers();
    return this.trailers;
  }

  get values(): ContextValues {
    this.contextValues ??= createContextValues();
    return this.contextValues;
  }

  private abort(why: unknown): void {
    if (this.reason !== undefined) return;
    this.reason = why;
    clearTimeout(this.timer);
    if (this.onAbort) this.init.shutdownSignal.removeEventListener("abort", this.onAbort);
    this.controller?.abort(why);
  }

  end(): void {
    this.abort(ended);
  }
}

export function createGrpcContext(init: GrpcContextInit): GrpcCallContext {
  return new GrpcHandlerContext(init);
}
