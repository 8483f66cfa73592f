import type { Clock } from "../clock.js";
import { hashSecret, inspectSecret } from "./token-secret.js";
import { factsOf, statusAt, type Token, type TokenFacts, type Verification, type VerifyStatus } from "./tokens.js";

export interface TokenLookup {
  findByHash(environment: string, hash: string): Promise<Token | undefined>;
}

/** Where successful uses go, to be written as `last_used_time` in batches. */
export interface UsageSink {
  record(environment: string, tokenId: string, at: number): void;
}

export interface TokenVerifierDeps {
  lookup: TokenLookup;
  /** Whether the environment exists now (in memory: the environment directory). */
  environmentExists(name: string): Promise<boolean>;
  usage: UsageSink;
  clock: Clock;
  /** How long a looked-up token is trusted without asking again; bounds staleness when pub/sub is down. */
  ttlMs: number;
  /**
   * How long "no such token" is remembered, so a secret tried again and again
   * costs one lookup. Each new well-formed secret still costs one (the
   * checksum is no secret): see the README.
   */
  negativeTtlMs: number;
  /** Bounds each cache, known tokens and unknown secrets apart: unknown ones never push out real ones. */
  maxEntries: number;
}

interface Entry {
  facts: TokenFacts;
  expiresAt: number;
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

/**
 * Verification on the hot path. A secret's shape, checksum and environment are
 * checked with no I/O; a well-formed secret is looked up once by its SHA-256
 * and then answered from a bounded in-process cache. Revocation and rotation
 * invalidate the cache on every replica through `invalidate`; when that
 * message is lost, an entry still lives at most `ttlMs`.
 */
export function createTokenVerifier(deps: TokenVerifierDeps) {
  const { lookup, environmentExists, usage, clock, ttlMs, negativeTtlMs, maxEntries } = deps;
  const cache = new Map<string, Entry>();
  const unknown = new Map<string, number>();
  const loading = new Map<string, Promise<TokenFacts | undefined>>();
  /** Bumped by every invalidation: a lookup that started before it must not repopulate the cache. */
  let epoch = 0;

  function remember(hash: string, facts: TokenFacts | undefined, now: number): void {
    if (!facts) {
      if (!unknown.has(hash) && unknown.size >= maxEntries) {
        const oldest = unknown.keys().next();
        if (!oldest.done) unknown.delete(oldest.value);
      }
      unknown.set(hash, now + negativeTtlMs);
      return;
    }
    if (!cache.has(hash) && cache.size >= maxEntries) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.set(hash, { facts, expiresAt: now + ttlMs });
  }

  async function load(environment: string, hash: string): Promise<TokenFacts | undefined> {
    const started = epoch;
    // Found by the SHA-256 of the secret: the secret itself is never compared, so there is nothing to time.
    const token = await lookup.findByHash(environment, hash);
    const facts = token ? factsOf(token) : undefined;
    if (started === epoch) remember(hash, facts, clock.now().getTime());
    return facts;
  }

  async function lookupOnce(environment: string, hash: string): Promise<TokenFacts | undefined> {
    if (!(await environmentExists(environment))) return undefined;
    let pending = loading.get(hash);
    if (!pending) {
      const started = load(environment, hash).finally(() => {
        // Only its own entry: an invalidation may have made way for a newer lookup.
        if (loading.get(hash) === started) loading.delete(hash);
      });
      pending = started;
      loading.set(hash, started);
    }
    return pending;
  }

  /** One frozen verdict per token and status, made once: the steady state allocates nothing here. */
  const verdicts = new WeakMap<TokenFacts, Map<VerifyStatus, Verification>>();

  function verdict(environment: string, facts: TokenFacts | undefined, now: number): Verification {
    if (!facts) return { status: "unknown", environment, inGrace: false };
    const status = statusAt(facts, now);
    if (status === "valid") usage.record(environment, facts.id, now);
    let byStatus = verdicts.get(facts);
    if (!byStatus) {
      byStatus = new Map();
      verdicts.set(facts, byStatus);
    }
    let found = byStatus.get(status);
    if (!found) {
      const inGrace = status === "valid" && facts.graceExpireTime !== undefined;
      found = Object.freeze({ status, environment, token: facts, inGrace });
      byStatus.set(status, found);
    }
    return found;
  }

  /**
   * Verifies `secret` for `environment`; expected outcomes are values, not
   * exceptions. Answers without a promise when no lookup is needed (the
   * steady state): it runs on every call.
   */
  function verify(secret: string, environment: string): Verification | Promise<Verification> {
    const shape = inspectSecret(secret);
    if (shape.kind === "malformed") return { status: "malformed", inGrace: false };
    if (shape.kind === "bad_checksum")
      return { status: "bad_checksum", environment: shape.environment, inGrace: false };
    if (shape.environment !== environment) {
      return { status: "wrong_environment", environment: shape.environment, inGrace: false };
    }
    const now = clock.now().getTime();
    const hash = hashSecret(secret);
    const hit = cache.get(hash);
    if (hit && hit.expiresAt > now) return verdict(environment, hit.facts, now);
    const missUntil = unknown.get(hash);
    if (missUntil !== undefined && missUntil > now) return verdict(environment, undefined, now);
    return lookupOnce(environment, hash).then((facts) => verdict(environment, facts, clock.now().getTime()));
  }

  return {
    verify,
    /** Forgets one token (revoked, rotated, retired): it is looked up again on next use. */
    invalidate(hash: string): void {
      epoch++;
      cache.delete(hash);
      unknown.delete(hash);
      // A lookup already running may have read the old state: later verifies must not join it.
      loading.delete(hash);
    },
    /** Forgets every token of an environment (deleted). */
    invalidateEnvironment(environment: string): void {
      epoch++;
      for (const [hash, entry] of cache) if (entry.facts.environment === environment) cache.delete(hash);
      loading.clear();
    },
    /** Forgets everything: after pub/sub was down, invalidations may have been missed. */
    clear(): void {
      epoch++;
      cache.clear();
      unknown.clear();
      loading.clear();
    },
    size: () => cache.size + unknown.size,
  };
}
