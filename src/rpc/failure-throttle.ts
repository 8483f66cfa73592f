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
 * left is throttled until one comes back. A check whose outcome is not known
 * yet holds a token while it runs (`take`) and gives it back if it succeeds
 * (`refund`), so a peer cannot have more unsettled checks at once than it
 * has tokens. Only failures are kept: a peer whose calls succeed is never
 * slowed down. The peers remembered longest unused are forgotten first.
 */
export function createFailureThrottle(options: FailureThrottleOptions) {
  const { perMinute, burst, maxPeers, now } = options;
  const perMs = perMinute / 60_000;
  const buckets = new Map<string, { tokens: number; at: number }>();

  /** The peer's bucket, refilled to now and made the most recently used; undefined when full (forgotten). */
  function level(peer: string, at: number): { tokens: number; at: number } | undefined {
    const bucket = buckets.get(peer);
    if (!bucket) return undefined;
    buckets.delete(peer);
    bucket.tokens = Math.min(burst, bucket.tokens + (at - bucket.at) * perMs);
    bucket.at = at;
    if (bucket.tokens >= burst) return undefined;
    buckets.set(peer, bucket);
    return bucket;
  }

  function bucketOf(peer: string, at: number): { tokens: number; at: number } {
    const found = level(peer, at);
    if (found) return found;
    if (buckets.size >= maxPeers) {
      const oldest = buckets.keys().next();
      if (!oldest.done) buckets.delete(oldest.value);
    }
    const bucket = { tokens: burst, at };
    buckets.set(peer, bucket);
    return bucket;
  }

  const enabled = perMinute > 0;
  return {
    enabled,
    /** Seconds until the peer has a token again, or undefined when it has one. */
    blockedFor(peer: string | undefined): number | undefined {
      if (!enabled || peer === undefined) return undefined;
      const bucket = level(peer, now());
      if (!bucket || bucket.tokens >= 1) return undefined;
      return Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000));
    },
    /** Takes a token for a check about to run; false (nothing taken) when the peer has none. */
    take(peer: string | undefined): boolean {
      if (!enabled || peer === undefined) return true;
      const bucket = bucketOf(peer, now());
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    },
    /** Gives back a token taken for a check that succeeded. */
    refund(peer: string | undefined): void {
      if (!enabled || peer === undefined) return;
      const bucket = level(peer, now());
      if (bucket) bucket.tokens = Math.min(burst, bucket.tokens + 1);
    },
    /** Counts one failed authentication that took no token first (missing credentials). */
    fail(peer: string | undefined): void {
      if (!enabled || peer === undefined) return;
      const bucket = bucketOf(peer, now());
      bucket.tokens = Math.max(0, bucket.tokens - 1);
    },
    peers: () => buckets.size,
  };
}
