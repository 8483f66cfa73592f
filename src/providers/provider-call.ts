import type { OutboundRequest, OutboundResponse, OutboundSend } from "./outbound-http.js";

/** How a provider call goes out: through the outbound guard, with a bound on `Retry-After`. */
export interface ProviderCallOptions {
  /** The outbound guard's request function: the only way out (timeout, address policy, size cap). */
  send: OutboundSend;
  /** The longest `Retry-After` honoured; a provider asking for more is retried after this. */
  maxRetryAfterMs: number;
}

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
  what: string,
  busyReason: (response: OutboundResponse) => string,
): Promise<ProviderCall> {
  const host = new URL(request.url).host;
  const result = await options.send(request);
  if (result.kind === "refused") {
    return { kind: "refused", reason: `roomkey refused to call ${what} (${host}): ${result.reason}` };
  }
  if (result.kind === "failed") {
    return { kind: "unavailable", reason: `${what} could not be reached (${host}): ${result.reason}` };
  }
  const { response } = result;
  if (response.status === 429 || response.status >= 500) {
    const after = retryAfterMs(response.header("retry-after") ?? null, Date.now());
    return {
      kind: "unavailable",
      reason: busyReason(response),
      ...(after === undefined ? {} : { retryAfterMs: Math.min(after, options.maxRetryAfterMs) }),
    };
  }
  return { kind: "answered", response };
}
