import type { Clock } from "../clock.js";
import type { TokenFacts } from "./tokens.js";

/**
 * The token cache: what this replica knows about token hashes, in memory.
 * A token looked up is trusted for `ttlMs`; a hash that matched no token is
 * remembered as unknown for `negativeTtlMs`. Both maps are bounded
 * (`maxEntries` each, oldest out first), so unknown secrets never push out
 * real tokens. Concurrent lookups of one hash share one database read, and a
 * read that began before an invalidation does not repopulate the cache.
 *
 * Invalidation comes from the token verifier (`forget`, called on every
 * replica through pub/sub when a token is created, revoked or rotated).
 */
export interface TokenCacheOptions {
  clock: Clock;
  ttlMs: number;
  negativeTtlMs: number;
  maxEntries: number;
}

interface Entry<F> {
  facts: F;
  expiresAt: number;
}

export type TokenCache = ReturnType<typeof createTokenCache<TokenFacts>>;

/** Also caches connect sessions, whose facts have the same shape where it matters: an environment. */
export function createTokenCache<F extends { environment: string } = TokenFacts>({
  clock,
  ttlMs,
  negativeTtlMs,
  maxEntries,
}: TokenCacheOptions) {
  const known = new Map<string, Entry<F>>();
  const unknown = new Map<string, number>();
  const loading = new Map<string, Promise<F | undefined>>();
  /** Bumped by every invalidation: a lookup that started before it must not repopulate the cache. */
  let epoch = 0;

  function remember(hash: string, facts: F | undefined, now: number): void {
    if (!facts) {
      if (!unknown.has(hash) && unknown.size >= maxEntries) {
        const oldest = unknown.keys().next();
        if (!oldest.done) unknown.delete(oldest.value);
      }
      unknown.set(hash, now + negativeTtlMs);
      return;
    }
    if (!known.has(hash) && known.size >= maxEntries) {
      const oldest = known.keys().next();
      if (!oldest.done) known.delete(oldest.value);
    }
    known.set(hash, { facts, expiresAt: now + ttlMs });
  }

  return {
    /** The cached token of `hash`; `null` when it is remembered as unknown; undefined when not cached. */
    get(hash: string, now: number): F | null | undefined {
      const hit = known.get(hash);
      if (hit && hit.expiresAt > now) return hit.facts;
      const missUntil = unknown.get(hash);
      if (missUntil !== undefined && missUntil > now) return null;
      return undefined;
    },

    /** Looks `hash` up with `find`, once for all concurrent callers, and remembers the answer. */
    load(hash: string, find: () => Promise<F | undefined>): Promise<F | undefined> {
      let pending = loading.get(hash);
      if (!pending) {
        const started = epoch;
        const read = find()
          .then((facts) => {
            if (started === epoch) remember(hash, facts, clock.now().getTime());
            return facts;
          })
          .finally(() => {
            // Only its own entry: an invalidation may have made way for a newer lookup.
            if (loading.get(hash) === read) loading.delete(hash);
          });
        pending = read;
        loading.set(hash, read);
      }
      return pending;
    },

    /** Forgets one hash; a lookup already running may have read the old state, so later ones do not join it. */
    forget(hash: string): void {
      epoch++;
      known.delete(hash);
      unknown.delete(hash);
      loading.delete(hash);
    },

    /** Forgets every token of an environment (deleted). */
    forgetEnvironment(environment: string): void {
      epoch++;
      for (const [hash, entry] of known) if (entry.facts.environment === environment) known.delete(hash);
      loading.clear();
    },

    clear(): void {
      epoch++;
      known.clear();
      unknown.clear();
      loading.clear();
    },

    size: () => known.size + unknown.size,
  };
}
