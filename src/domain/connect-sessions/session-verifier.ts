import type { Clock } from "../clock.js";
import { createTokenCache } from "../tokens/token-cache.js";
import { hashSessionSecret, inspectSessionSecret, type SessionFacts, sessionFactsOf } from "./connect-sessions.js";
import type { ConnectSessionStore } from "./ports.js";

export type SessionVerdict =
  | { status: "valid"; facts: SessionFacts }
  | { status: "malformed" }
  | { status: "bad_checksum" | "wrong_environment"; environment: string }
  | { status: "unknown" | "expired" | "revoked"; environment: string; facts?: SessionFacts };

export interface SessionVerifierDeps {
  store: Pick<ConnectSessionStore, "findByHash">;
  /** Whether the environment exists now (in memory: the environment directory). */
  environmentExists(name: string): Promise<boolean>;
  clock: Clock;
  /** How long a looked-up session is trusted when no invalidation arrives (pub/sub down). */
  ttlMs: number;
  /** How long "no such session" is remembered. */
  negativeTtlMs: number;
  maxEntries: number;
}

export type SessionVerifier = ReturnType<typeof createSessionVerifier>;

/**
 * Connect-session secrets on the hot path, as the token verifier does for
 * tokens: shape, checksum and environment with no I/O; then one lookup by
 * SHA-256, cached; revocation invalidates the cache on every replica through
 * `invalidate` (pub/sub), within the time a message takes. Expiry is read
 * from the cached facts at each call, so it needs no invalidation.
 */
export function createSessionVerifier(deps: SessionVerifierDeps) {
  const { store, clock } = deps;
  const cache = createTokenCache<SessionFacts>({
    clock,
    ttlMs: deps.ttlMs,
    negativeTtlMs: deps.negativeTtlMs,
    maxEntries: deps.maxEntries,
  });

  function verdict(environment: string, facts: SessionFacts | undefined, now: number): SessionVerdict {
    if (!facts) return { status: "unknown", environment };
    if (facts.revoked) return { status: "revoked", environment, facts };
    if (facts.expireTime <= now) return { status: "expired", environment, facts };
    return { status: "valid", facts };
  }

  function verify(secret: string, environment: string): SessionVerdict | Promise<SessionVerdict> {
    const shape = inspectSessionSecret(secret);
    if (shape.kind === "malformed") return { status: "malformed" };
    if (shape.kind === "bad_checksum") return { status: "bad_checksum", environment: shape.environment };
    if (shape.environment !== environment) return { status: "wrong_environment", environment: shape.environment };
    const now = clock.now().getTime();
    const hash = hashSessionSecret(secret);
    const hit = cache.get(hash, now);
    if (hit) return verdict(environment, hit, now);
    if (hit === null) return verdict(environment, undefined, now);
    return (async () => {
      const facts = (await deps.environmentExists(environment))
        ? await cache.load(hash, async () => {
            const session = await store.findByHash(environment, hash);
            return session ? sessionFactsOf(session, environment) : undefined;
          })
        : undefined;
      return verdict(environment, facts, clock.now().getTime());
    })();
  }

  /** The verdict when memory alone shows the secret valid, else undefined: for callers that must not cost a lookup. */
  function verifyFromMemory(secret: string, environment: string): SessionVerdict | undefined {
    const shape = inspectSessionSecret(secret);
    if (shape.kind !== "session" || shape.environment !== environment) return undefined;
    const now = clock.now().getTime();
    const hit = cache.get(hashSessionSecret(secret), now);
    if (!hit) return undefined;
    const found = verdict(environment, hit, now);
    return found.status === "valid" ? found : undefined;
  }

  return {
    verify,
    verifyFromMemory,
    /** Forgets one session (revoked here or on another replica): it is looked up again on next use. */
    invalidate(hash: string): void {
      cache.forget(hash);
    },
    invalidateEnvironment(environment: string): void {
      cache.forgetEnvironment(environment);
    },
    /** Forgets everything: after pub/sub was down, invalidations may have been missed. */
    clear(): void {
      cache.clear();
    },
  };
}
