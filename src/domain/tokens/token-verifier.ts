import type { Clock } from "../clock.js";
import { hashSecret, inspectSecret } from "./token-secret.js";
import { factsOf, statusAt, type Token, type TokenFacts, type Verification, type VerifyStatus } from "./tokens.js";

export interface TokenLookup {
  findByHash(environment: string, hash: string): Promise<Token | undefined>;
}

/** Every token hash an environment holds, whatever its state: what the known-hash filter is made of. */
export interface TokenHashSource {
  listHashes(environment: string): Promise<string[]>;
}

/** Where successful uses go, to be written as `last_used_time` in batches. */
export interface UsageSink {
  record(environment: string, tokenId: string, at: number): void;
}

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
   * checksum is no secret): see the README.
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

/**
 * The hashes of one environment's tokens, as of `loadedAt`, plus every hash
 * this replica heard of since (created here, or announced on the bus). A
 * filter is trusted for `ttlMs` after its load began, like a cached token,
 * and reloaded in the background from half that age on, so that a token
 * whose announcement was lost is accepted within `ttlMs`. Hashes are kept as
 * 16 hex characters (64 bits): a collision only costs a lookup.
 */
interface KnownHashes {
  hashes: Set<string> | undefined;
  loadedAt: number;
  /** Heard while a load was running: merged into what it read. */
  heard: Set<string>;
  loading: Promise<void> | undefined;
}

const filterKeyLength = 16;
const filterKey = (hash: string) => hash.slice(0, filterKeyLength);

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
  const maxFilterEntries = deps.maxFilterEntries ?? 1_000_000;
  const filters = new Map<string, KnownHashes>();
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

  function filterOf(environment: string): KnownHashes {
    let filter = filters.get(environment);
    if (!filter) {
      filter = { hashes: undefined, loadedAt: 0, heard: new Set(), loading: undefined };
      filters.set(environment, filter);
    }
    return filter;
  }

  function reload(environment: string, filter: KnownHashes): void {
    const source = deps.knownHashes;
    if (!source || filter.loading) return;
    filter.heard = new Set();
    const started = clock.now().getTime();
    filter.loading = source
      .listHashes(environment)
      .then((hashes) => {
        // Dropped (environment gone, or pub/sub lost) while loading: what was read may be stale.
        if (filters.get(environment) !== filter) return;
        if (hashes.length > maxFilterEntries) {
          filter.hashes = undefined;
        } else {
          const next = new Set(hashes.map(filterKey));
          for (const key of filter.heard) next.add(key);
          filter.hashes = next;
        }
        filter.loadedAt = started;
      })
      .catch(() => {
        // MongoDB unavailable: the filter stays as it was; lookups decide meanwhile.
      })
      .finally(() => {
        filter.loading = undefined;
      });
  }

  /**
   * Whether `hash` can be refused as unknown without a lookup: the
   * environment's filter is trusted and does not hold it. Refreshes a filter
   * past its lifetime in the background.
   */
  function knownUnknown(environment: string, hash: string, now: number): boolean {
    if (!deps.knownHashes || !deps.environmentKnown?.(environment)) return false;
    const filter = filterOf(environment);
    const age = now - filter.loadedAt;
    if (age > ttlMs / 2) reload(environment, filter);
    if (!filter.hashes || age > ttlMs) return false;
    return !filter.hashes.has(filterKey(hash));
  }

  /** A token this replica now knows exists (created here, or announced): the filter must let it through. */
  function learn(environment: string, hash: string): void {
    const filter = filters.get(environment);
    if (!filter) return;
    const key = filterKey(hash);
    filter.hashes?.add(key);
    if (filter.loading) filter.heard.add(key);
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
    if (knownUnknown(environment, hash, now)) return verdict(environment, undefined, now);
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
    const filter = filters.get(environment);
    if (!filter?.hashes || clock.now().getTime() - filter.loadedAt > ttlMs) return false;
    return filter.hashes.has(filterKey(hashSecret(secret)));
  }

  /**
   * The verdict on a secret when memory alone gives a valid one (a cached
   * token), else undefined: for callers that must not cost a lookup.
   */
  function verifyFromMemory(secret: string, environment: string): Verification | undefined {
    const shape = inspectSecret(secret);
    if (shape.kind !== "token" || shape.environment !== environment) return undefined;
    const now = clock.now().getTime();
    const hit = cache.get(hashSecret(secret));
    if (!hit || hit.expiresAt <= now) return undefined;
    const found = verdict(environment, hit.facts, now);
    return found.status === "valid" ? found : undefined;
  }

  return {
    verify,
    verifyFromMemory,
    knownToExist,
    /**
     * Forgets one token (created, revoked, rotated, retired): it is looked up
     * again on next use. With its environment, the known-hash filter learns
     * it exists (a token just created here or on another replica).
     */
    invalidate(hash: string, environment?: string): void {
      epoch++;
      cache.delete(hash);
      unknown.delete(hash);
      // A lookup already running may have read the old state: later verifies must not join it.
      loading.delete(hash);
      if (environment !== undefined) learn(environment, hash);
    },
    /** Forgets every token of an environment (deleted). */
    invalidateEnvironment(environment: string): void {
      epoch++;
      for (const [hash, entry] of cache) if (entry.facts.environment === environment) cache.delete(hash);
      loading.clear();
      filters.delete(environment);
    },
    /** Forgets everything: after pub/sub was down, invalidations (and creations) may have been missed. */
    clear(): void {
      epoch++;
      cache.clear();
      unknown.clear();
      loading.clear();
      filters.clear();
    },
    size: () => cache.size + unknown.size,
  };
}
