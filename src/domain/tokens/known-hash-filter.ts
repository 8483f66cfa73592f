import type { Clock } from "../clock.js";
import type { TokenHashSource } from "./ports.js";

/**
 * The hashes of one environment's tokens, as of `loadedAt`, plus every hash
 * this replica heard of since (created here, or announced on the bus).
 */
interface KnownHashes {
  hashes: Set<string> | undefined;
  loadedAt: number;
  /** Heard while a load was running: merged into what it read. */
  heard: Set<string>;
  loading: Promise<void> | undefined;
}

/** Hashes are kept as 16 hex characters (64 bits): a collision only costs a lookup. */
const filterKeyLength = 16;
const filterKey = (hash: string) => hash.slice(0, filterKeyLength);

/**
 * The known-hash filter: per environment, the hashes of its tokens, so that a
 * well-formed secret whose hash is not among them is refused with no lookup.
 * A filter is trusted for `ttlMs` after its load began, like a cached token,
 * and reloaded in the background from half that age on, so that a token whose
 * announcement was lost is accepted within `ttlMs`. An environment with more
 * than `maxEntries` tokens gets no filter (its unknown secrets are looked up).
 */
export function createKnownHashFilter(deps: {
  source: TokenHashSource;
  clock: Clock;
  ttlMs: number;
  maxEntries: number;
}) {
  const { source, clock, ttlMs, maxEntries } = deps;
  const filters = new Map<string, KnownHashes>();

  function filterOf(environment: string): KnownHashes {
    let filter = filters.get(environment);
    if (!filter) {
      filter = { hashes: undefined, loadedAt: 0, heard: new Set(), loading: undefined };
      filters.set(environment, filter);
    }
    return filter;
  }

  function reload(environment: string, filter: KnownHashes): void {
    if (filter.loading) return;
    filter.heard = new Set();
    const started = clock.now().getTime();
    filter.loading = source
      .listHashes(environment)
      .then((hashes) => {
        // Dropped (environment gone, or pub/sub lost) while loading: what was read may be stale.
        if (filters.get(environment) !== filter) return;
        if (hashes.length > maxEntries) {
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

  return {
    /**
     * Whether `hash` can be refused as unknown without a lookup: the
     * environment's filter is trusted and does not hold it. Refreshes a
     * filter past half its lifetime in the background.
     */
    refuses(environment: string, hash: string, now: number): boolean {
      const filter = filterOf(environment);
      const age = now - filter.loadedAt;
      if (age > ttlMs / 2) reload(environment, filter);
      if (!filter.hashes || age > ttlMs) return false;
      return !filter.hashes.has(filterKey(hash));
    },

    /** Whether the environment's trusted filter holds `hash` (nobody can make up such a secret). */
    holds(environment: string, hash: string): boolean {
      const filter = filters.get(environment);
      if (!filter?.hashes || clock.now().getTime() - filter.loadedAt > ttlMs) return false;
      return filter.hashes.has(filterKey(hash));
    },

    /** A token this replica now knows exists (created here, or announced): the filter must let it through. */
    learn(environment: string, hash: string): void {
      const filter = filters.get(environment);
      if (!filter) return;
      const key = filterKey(hash);
      filter.hashes?.add(key);
      if (filter.loading) filter.heard.add(key);
    },

    drop(environment: string): void {
      filters.delete(environment);
    },

    clear(): void {
      filters.clear();
    },
  };
}
