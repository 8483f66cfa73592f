import { isIPv6 } from "node:net";

export interface FailureThrottleOptions {
  /** Failed authentications a peer may make per minute, sustained; 0 turns the throttle off. */
  perMinute: number;
  /** Failures a peer may make at once before the rate applies. */
  burst: number;
  /** Peers remembered at most; the oldest is forgotten first. */
  maxPeers: number;
  now(): number;
}

export type FailureThrottle = ReturnType<typeof createFailureThrottle>;

/**
 * The peer a throttle counts: an IPv4 address, or the /64 an IPv6 address is
 * in (one host usually holds a whole /64, so counting single addresses would
 * let it rotate through them). `::ffff:` mapped addresses count as IPv4.
 */
export function peerKey(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = "", tail = ""] = address.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = address.includes("::")
    ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/**
 * Failed authentications per peer, as token buckets: each failure takes one
 * token; tokens come back at `perMinute`, up to `burst`. A peer with no token
 * left is throttled until one comes back. Only failures are counted: a peer
 * whose calls succeed is never slowed down.
 */
export function createFailureThrottle(options: FailureThrottleOptions) {
  const { perMinute, burst, maxPeers, now } = options;
  const perMs = perMinute / 60_000;
  const buckets = new Map<string, { tokens: number; at: number }>();

  function level(peer: string, at: number): { tokens: number; at: number } | undefined {
    const bucket = buckets.get(peer);
    if (!bucket) return undefined;
    bucket.tokens = Math.min(burst, bucket.tokens + (at - bucket.at) * perMs);
    bucket.at = at;
    if (bucket.tokens >= burst) {
      buckets.delete(peer);
      return undefined;
    }
    return bucket;
  }

  return {
    enabled: perMinute > 0,
    /** Seconds until the peer may fail again, or undefined when it is not throttled. */
    blockedFor(peer: string | undefined): number | undefined {
      if (perMinute <= 0 || peer === undefined) return undefined;
      const bucket = level(peer, now());
      if (!bucket || bucket.tokens >= 1) return undefined;
      return Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000));
    },
    /** Counts one failed authentication of the peer. */
    fail(peer: string | undefined): void {
      if (perMinute <= 0 || peer === undefined) return;
      const at = now();
      let bucket = level(peer, at);
      if (!bucket) {
        if (buckets.size >= maxPeers) {
          const oldest = buckets.keys().next();
          if (!oldest.done) buckets.delete(oldest.value);
        }
        bucket = { tokens: burst, at };
        buckets.set(peer, bucket);
      }
      bucket.tokens = Math.max(0, bucket.tokens - 1);
    },
    peers: () => buckets.size,
  };
}
