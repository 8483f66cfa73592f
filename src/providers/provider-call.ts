import type { OutboundRequest, OutboundResponse, OutboundSend } from "./outbound-http.js";

/** How a provider call goes out: through the outbound guard, with a bound on `Retry-After`. */
export interface ProviderCallOptions {
  /** The outbound guard's request function: the only way out (timeout, address policy, size cap). */
  send: OutboundSend;
  /** The longest `Retry-After` honoured; a provider asking for more is retried after this. */
  maxRetryAfterMs: number;
  /** Told how each call ended (metrics). */
  observe?: ProviderCallObserver;
}

/** What a provider call was for. */
export type ProviderCallKind = "credential_check" | "token_exchange" | "token_refresh" | "token_revocation";

/**
 * How a call ended: `refused` by the outbound guard, `unreachable`, `busy`
 * (429 or 5xx), or answered with a status class (`2xx`, `4xx`, ...).
 */
export type ProviderCallOutcome = "refused" | "unreachable" | "busy" | `${1 | 2 | 3 | 4}xx`;

export type ProviderCallObserver = (call: ProviderCallKind, outcome: ProviderCallOutcome, seconds: number) => void;

/** A provider call, sorted: refused before it went out, the provider unavailable for now, or an answer to read. */
export type ProviderCall =
  | { kind: "refused"; reason: string }
  | { kind: "unavailable"; reason: string; retryAfterMs?: number }
  | { kind: "answered"; response: OutboundResponse };

/** `Retry-After` in seconds or as an HTTP date, in milliseconds from now; undefined if absent or unreadable. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const seconds = Number(header.trim());
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Calls a provider and sorts the outcome the same way for every kind of call:
 * a destination the outbound guard refuses and a provider that cannot be
 * reached are named with `what` and the host; 429 and 5xx are unavailable,
 * with the provider's `Retry-After` (at most `maxRetryAfterMs`) and
 * `busyReason` of the answer; anything else is an answer for the caller to read.
 */
export async function callProvider(
  options: ProviderCallOptions,
  request: OutboundRequest,
  call: { kind: ProviderCallKind; what: string },
  busyReason: (response: OutboundResponse) => string,
): Promise<ProviderCall> {
  const started = performance.now();
  const { sorted, outcome } = await sortCall(options, request, call.what, busyReason);
  options.observe?.(call.kind, outcome, (performance.now() - started) / 1000);
  return sorted;
}

/** The status class of an answer that is not busy: 1xx to 4xx. */
function classOf(status: number): ProviderCallOutcome {
  return `${Math.min(4, Math.max(1, Math.floor(status / 100))) as 1 | 2 | 3 | 4}xx`;
}

async function sortCall(
  options: ProviderCallOptions,
  request: OutboundRequest,
  what: string,
  busyReason: (response: OutboundResponse) => string,
): Promise<{ sorted: ProviderCall; outcome: ProviderCallOutcome }> {
  const host = new URL(request.url).host;
  const result = await options.send(request);
  if (result.kind === "refused") {
    const reason = `roomkey refused to call ${what} (${host}): ${result.reason}`;
    return { sorted: { kind: "refused", reason }, outcome: "refused" };
  }
  if (result.kind === "failed") {
    const reason = `${what} could not be reached (${host}): ${result.reason}`;
    return { sorted: { kind: "unavailable", reason }, outcome: "unreachable" };
  }
  const { response } = result;
  if (response.status === 429 || response.status >= 500) {
    const after = retryAfterMs(response.header("retry-after") ?? null, Date.now());
    const sorted: ProviderCall = {
      kind: "unavailable",
      reason: busyReason(response),
      ...(after === undefined ? {} : { retryAfterMs: Math.min(after, options.maxRetryAfterMs) }),
    };
    return { sorted, outcome: "busy" };
  }
  return { sorted: { kind: "answered", response }, outcome: classOf(response.status) };
}
