import type { Clock } from "../clock.js";
import { createKnownHashFilter } from "./known-hash-filter.js";
import type { TokenHashSource, TokenLookup, UsageSink } from "./ports.js";
import { createTokenCache } from "./token-cache.js";
import { hashSecret, inspectSecret } from "./token-secret.js";
import { factsOf, statusAt, type TokenFacts, type Verification, type VerifyStatus } from "./tokens.js";

export interface TokenVerifierDeps {
  lookup: TokenLookup;
  /** Whether the environment exists now (in memory: the environment directory). */
  environmentExists(name: string): Promise<boolean>;
  /**
   * Whether the environment is known to exist without asking anyone: only
   * such environments get a known-hash filter, so names made up by a caller
   * cost neither a filter nor a load.
   */
  environmentKnown?(name: string): boolean;
  usage: UsageSink;
  clock: Clock;
  /** How long a looked-up token is trusted without asking again; bounds staleness when pub/sub is down. */
  ttlMs: number;
  /**
   * How long "no such token" is remembered, so a secret tried again and again
   * costs one lookup. Each new well-formed secret still costs one (the
   * checksum is no secret): see docs/guide.md, "API tokens".
   */
  negativeTtlMs: number;
  /** Bounds each cache, known tokens and unknown secrets apart: unknown ones never push out real ones. */
  maxEntries: number;
  /**
   * The hashes of an environment's tokens, for the known-hash filter: a
   * well-formed secret whose hash is not among them is refused with no
   * lookup. Without it every new secret costs one lookup.
   */
  knownHashes?: TokenHashSource;
  /** An environment with more tokens than this gets no filter (its unknown secrets are looked up). */
  maxFilterEntries?: number;
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

/** Counts since start: verifications answered by a cached token, by a hash known to match none, or by a lookup. */
export interface TokenCacheStats {
  hits: number;
  negativeHits: number;
  misses: number;
}

/**
 * Verification on the hot path. A secret's shape, checksum and environment are
 * checked with no I/O; a well-formed secret is looked up once by its SHA-256
 * and then answered from the token cache (token-cache.ts), and a secret whose
 * hash the known-hash filter (known-hash-filter.ts) lacks costs no lookup. Revocation and rotation
 * invalidate the cache on every replica through `invalidate`; when that
 * message is lost, an entry still lives at most `ttlMs`.
 */
export function createTokenVerifier(deps: TokenVerifierDeps) {
  const { lookup, environmentExists, usage, clock, ttlMs } = deps;
  const cache = createTokenCache({ clock, ttlMs, negativeTtlMs: deps.negativeTtlMs, maxEntries: deps.maxEntries });
  /** How well the cache answers, for metrics: plain counts, read when scraped. */
  const stats: TokenCacheStats = { hits: 0, negativeHits: 0, misses: 0 };
  const filter = deps.knownHashes
    ? createKnownHashFilter({
        source: deps.knownHashes,
        clock,
        ttlMs,
        maxEntries: deps.maxFilterEntries ?? 1_000_000,
      })
    : undefined;

  async function lookupOnce(environment: string, hash: string): Promise<TokenFacts | undefined> {
    if (!(await environmentExists(environment))) return undefined;
    return cache.load(hash, async () => {
      // Found by the SHA-256 of the secret: the secret itself is never compared, so there is nothing to time.
      const token = await lookup.findByHash(environment, hash);
      return token ? factsOf(token) : undefined;
    });
  }

  /** Whether `hash` can be refused without a lookup: only environments known to exist get a filter. */
  function knownUnknown(environment: string, hash: string, now: number): boolean {
    if (!filter || !deps.environmentKnown?.(environment)) return false;
    return filter.refuses(environment, hash, now);
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
    const hit = cache.get(hash, now);
    if (hit) {
      stats.hits++;
      return verdict(environment, hit, now);
    }
    if (hit === null || knownUnknown(environment, hash, now)) {
      stats.negativeHits++;
      return verdict(environment, undefined, now);
    }
    stats.misses++;
    return lookupOnce(environment, hash).then((facts) => verdict(environment, facts, clock.now().getTime()));
  }

  /**
   * Whether a token with this secret's hash is known to exist here: the
   * environment's trusted filter holds it. Nobody can make up such a secret,
   * so looking it up costs what real tokens cost.
   */
  function knownToExist(secret: string, environment: string): boolean {
    const shape = inspectSecret(secret);
    if (shape.kind !== "token" || shape.environment !== environment) return false;
    return filter?.holds(environment, hashSecret(secret)) ?? false;
  }

  /**
   * The verdict on a secret when memory alone gives a valid one (a cached
   * token), else undefined: for callers that must not cost a lookup.
   */
  function verifyFromMemory(secret: string, environment: string): Verification | undefined {
    const shape = inspectSecret(secret);
    if (shape.kind !== "token" || shape.environment !== environment) return undefined;
    const now = clock.now().getTime();
    const hit = cache.get(hashSecret(secret), now);
    if (!hit) return undefined;
    stats.hits++;
    const found = verdict(environment, hit, now);
    return found.status === "valid" ? found : undefined;
  }

  /** The id of the token a secret is, whatever its state, when the cache holds it (no lookup, no stats). */
  function identify(secret: string, environment: string): string | undefined {
    const shape = inspectSecret(secret);
    if (shape.kind !== "token" || shape.environment !== environment) return undefined;
    return cache.get(hashSecret(secret), clock.now().getTime())?.id;
  }

  return {
    verify,
    verifyFromMemory,
    knownToExist,
    identify,
    /**
     * Forgets one token (created, revoked, rotated, retired): it is looked up
     * again on next use. With its environment, the known-hash filter learns
     * it exists (a token just created here or on another replica).
     */
    invalidate(hash: string, environment?: string): void {
      cache.forget(hash);
      if (environment !== undefined) filter?.learn(environment, hash);
    },
    /** Forgets every token of an environment (deleted). */
    invalidateEnvironment(environment: string): void {
      cache.forgetEnvironment(environment);
      filter?.drop(environment);
    },
    /** Forgets everything: after pub/sub was down, invalidations (and creations) may have been missed. */
    clear(): void {
      cache.clear();
      filter?.clear();
    },
    size: () => cache.size(),
    /** Lookups answered from memory (a token, or a hash known to match none) and those that read the database. */
    cacheStats: (): Readonly<TokenCacheStats> => stats,
  };
}
