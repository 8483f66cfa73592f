import { lookup as dnsLookup, Resolver } from "node:dns/promises";
import {
  type Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  Agent as NodeHttpAgent,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import type { DestinationCheck, OutboundDestinations } from "../domain/integrations/ports.js";
import { type AddressPolicy, createAddressPolicy, normalHost } from "./address-policy.js";

/** The most of an answer roomkey reads; past it, it stops reading and says the answer was too large. */
export const maxResponseBytes = 64 * 1024;
/**
 * How long PutIntegration waits for DNS to check a host. A name that does not
 * resolve in this time is accepted (the connect-time check still guards it),
 * so a caller naming a slow DNS zone holds its own call for at most this long.
 */
export const destinationDnsTimeoutMs = 2_000;

/** One address a name resolves to. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Every address a hostname resolves to now; rejects (or gives none) when it does not resolve. */
export type HostResolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface OutboundRequest {
  url: string | URL;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

/** An answer, whatever its status: a 3xx is an answer too, never followed. */
export interface OutboundResponse {
  status: number;
  /** A response header (lower-case name), or undefined. */
  header(name: string): string | undefined;
  /** The `content-type` header, or "". */
  contentType: string;
  /** The body as UTF-8; empty when it was too large. */
  text: string;
  /** The body went past `maxResponseBytes`: reading stopped there. */
  tooLarge: boolean;
}

export type OutboundResult =
  | { kind: "response"; response: OutboundResponse }
  /** The destination is one roomkey does not call (the address policy): asking again cannot help. */
  | { kind: "refused"; reason: string }
  /** No answer: network error, DNS failure or timeout. Asking again later may work. */
  | { kind: "failed"; reason: string };

/** The one way roomkey sends a request to a URL that an integration names. */
export type OutboundSend = (request: OutboundRequest) => Promise<OutboundResult>;

export interface OutboundHttpOptions {
  /** Hostnames, IP addresses and CIDR blocks exempt from the address policy (ROOMKEY_OUTBOUND_ALLOW). */
  allow: readonly string[];
  /** The longest a request may take, answer body included. */
  timeoutMs: number;
  maxResponseBytes?: number;
  /**
   * Resolves names, both to check a URL and at connect time (tests simulate
   * DNS with it). By default: `dns.lookup` (the system resolver, hosts file
   * included) at connect time, and c-ares queries bounded by
   * `destinationDnsTimeoutMs` to check a URL.
   */
  resolve?: HostResolver;
}

export interface OutboundHttp extends OutboundDestinations {
  send: OutboundSend;
  /** Closes idle kept-alive connections. */
  close(): void;
}

/** The address policy refused a destination (raised inside the connect-time lookup). */
class DestinationRefusedError extends Error {
  override readonly name = "DestinationRefusedError";
}

/** DNS through c-ares: not the libuv thread pool, so slow names cannot starve file and crypto work. */
function caresResolver(): HostResolver {
  const resolver = new Resolver({ timeout: 750, tries: 2 });
  const none = () => [] as string[];
  return async (hostname) => {
    const [v4, v6] = await Promise.all([
      resolver.resolve4(hostname).catch(none),
      resolver.resolve6(hostname).catch(none),
    ]);
    return [
      ...v4.map((address) => ({ address, family: 4 as const })),
      ...v6.map((address) => ({ address, family: 6 as const })),
    ];
  };
}

const systemResolver: HostResolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map(({ address, family }) => ({
    address,
    family: family === 6 ? 6 : 4,
  }));

/**
 * DNS for connections whose names callers choose freely (webhook endpoints):
 * c-ares queries with a deadline, never the libuv thread pool that the whole
 * process shares, so that names whose DNS never answers cannot hold up other
 * environments' work. Single-label names (`localhost`, a compose service),
 * which only the system resolver knows, still go to it.
 */
export function queryingResolver(): HostResolver {
  const queries = caresResolver();
  return (hostname) => (hostname.includes(".") ? queries(hostname) : systemResolver(hostname));
}

/** Settles with `promise`, or with `fallback` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise.catch(() => fallback), late]).finally(() => clearTimeout(timer));
}

function describeUrl(raw: string | URL): { url: URL } | { refusal: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { refusal: "it is not a URL" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { refusal: "only http and https URLs are called" };
  return { url };
}

/**
 * The outbound-HTTP guard: every request roomkey sends to a URL an
 * integration names goes through `send`, and PutIntegration checks URLs with
 * `check`. A destination must be http(s) and reach only public addresses
 * (the address policy): IP literals are checked before connecting, names when
 * they are resolved for the connection itself, so a DNS answer that changes
 * between a check and the connect (rebinding) still cannot reach a forbidden
 * address. Redirects are answers, never followed; a body past the size cap is
 * not read; every request has a deadline.
 */
export function createOutboundHttp(options: OutboundHttpOptions): OutboundHttp {
  const policy: AddressPolicy = createAddressPolicy(options.allow);
  const cap = options.maxResponseBytes ?? maxResponseBytes;
  const connectResolver = options.resolve ?? systemResolver;
  const checkResolver = options.resolve ?? caresResolver();

  /** Why none of `addresses` may be called for `host`, or undefined. */
  function addressRefusal(host: string, addresses: readonly ResolvedAddress[]): string | undefined {
    if (policy.exempts(host)) return undefined;
    for (const { address } of addresses) {
      const why = policy.refusal(address);
      // The address itself is not repeated: it would tell a caller what an internal name resolves to.
      if (why) return `"${host}" resolves to ${why}`;
    }
    return undefined;
  }

  /** Resolves a name for a connection and refuses it when any of its addresses is forbidden. */
  const guardedLookup: LookupFunction = (hostname, lookupOptions, callback) => {
    const family = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : undefined;
    connectResolver(hostname).then(
      (resolved) => {
        const addresses = family === undefined ? resolved : resolved.filter((a) => a.family === family);
        if (addresses.length === 0) {
          const error: NodeJS.ErrnoException = new Error(`no address for ${hostname}`);
          error.code = "ENOTFOUND";
          return callback(error, "", 0);
        }
        const why = addressRefusal(normalHost(hostname), addresses);
        if (why) return callback(new DestinationRefusedError(why), "", 0);
        if (lookupOptions.all) {
          callback(null, addresses);
        } else {
          const [first] = addresses as [ResolvedAddress];
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, "", 0),
    );
  };

  // Own agents: a kept-alive socket is reused only by requests that went through this guard.
  const agents: { http: HttpAgent; https: HttpsAgent } = {
    http: new NodeHttpAgent({ keepAlive: true, lookup: guardedLookup }),
    https: new HttpsAgent({ keepAlive: true, lookup: guardedLookup }),
  };

  async function check(raw: string): Promise<DestinationCheck> {
    const described = describeUrl(raw);
    if ("refusal" in described) return { allowed: false, why: described.refusal };
    const host = normalHost(described.url.hostname);
    const literal = policy.hostRefusal(host);
    if (literal) return { allowed: false, why: literal };
    if (policy.exempts(host) || isIP(host) !== 0) return { allowed: true };
    const addresses = await within(checkResolver(host), destinationDnsTimeoutMs, []);
    const why = addressRefusal(host, addresses);
    return why ? { allowed: false, why } : { allowed: true };
  }

  function send(request: OutboundRequest): Promise<OutboundResult> {
    const described = describeUrl(request.url);
    if ("refusal" in described) return Promise.resolve({ kind: "refused", reason: described.refusal });
    const { url } = described;
    const literal = policy.hostRefusal(url.hostname);
    if (literal) return Promise.resolve({ kind: "refused", reason: literal });

    return new Promise<OutboundResult>((resolve) => {
      const headers: Record<string, string> = { "user-agent": "roomkey", ...request.headers };
      if (request.body !== undefined) headers["content-length"] = String(Buffer.byteLength(request.body));
      const secure = url.protocol === "https:";
      const outgoing = (secure ? httpsRequest : httpRequest)(url, {
        method: request.method,
        headers,
        agent: secure ? agents.https : agents.http,
      });
      let settled = false;
      /** Answers once; unless the exchange `finished`, what is left of it (an unread body, a slow server) is cut off. */
      const settle = (result: OutboundResult, finished = false) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
        if (!finished) outgoing.destroy();
      };
      const timer = setTimeout(
        () => settle({ kind: "failed", reason: `no answer within ${options.timeoutMs} ms` }),
        options.timeoutMs,
      );
      outgoing.on("error", (error: NodeJS.ErrnoException) => {
        if (error instanceof DestinationRefusedError) settle({ kind: "refused", reason: error.message });
        else settle({ kind: "failed", reason: typeof error.code === "string" ? error.code : "network error" });
      });
      outgoing.on("response", (incoming: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const answer = (text: string, tooLarge: boolean): OutboundResult => ({
          kind: "response",
          response: {
            status: incoming.statusCode ?? 0,
            header(name) {
              const value = incoming.headers[name.toLowerCase()];
              return Array.isArray(value) ? value.join(", ") : value;
            },
            contentType: incoming.headers["content-type"] ?? "",
            text,
            tooLarge,
          },
        });
        incoming.on("data", (chunk: Buffer) => {
          size += chunk.length;
          // Past the cap reading stops: the rest of the body is never downloaded.
          if (size > cap) settle(answer("", true));
          else chunks.push(chunk);
        });
        incoming.on("end", () => settle(answer(Buffer.concat(chunks).toString("utf8"), false), true));
        incoming.on("error", () => settle({ kind: "failed", reason: "the connection closed mid-answer" }));
        incoming.on("close", () => {
          if (!incoming.complete) settle({ kind: "failed", reason: "the connection closed mid-answer" });
        });
      });
      outgoing.end(request.body);
    });
  }

  return {
    send,
    check,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
