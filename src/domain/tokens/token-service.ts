import { createHash } from "node:crypto";
import type { Clock } from "../clock.js";
import { FailedPreconditionError, NotFoundError, RoomkeyError } from "../errors.js";
import { claimIdempotencyKey } from "../idempotency.js";
import { newId } from "../ids.js";
import { type Page, type PageRequest, toPage } from "../paging.js";
import type { IdempotencyRecord, RetirementScheduler, TokenEvents, TokenInvalidations, TokenStore } from "./ports.js";
import { displayPrefix, generateSecret, hashSecret } from "./token-secret.js";
import { stateAt, type Token, type TokenState } from "./tokens.js";

const hour = 3_600_000;
export const defaultGraceMs = 24 * hour;
export const maxGraceMs = 7 * 24 * hour;
/** Who asks: the admin key, or a token with its scopes. */
export type Caller = { kind: "admin" } | { kind: "token"; tokenId: string; scopes: ReadonlySet<string> };

export interface CreateTokenInput {
  name: string;
  scopes: string[];
  ttlMs?: number;
  idempotencyKey?: string;
}

export interface TokenServiceDeps {
  store: TokenStore;
  invalidations: TokenInvalidations;
  retirements: RetirementScheduler;
  /** Told of created, rotated and revoked tokens (webhooks); none by default. */
  events?: TokenEvents;
  /** The environment's default token lifetime, if it has one. */
  defaultLifetimeMs(environment: string): Promise<number | undefined>;
  /** How long replicas may keep a token cached without hearing of a change (ms). */
  cacheTtlMs: number;
  clock: Clock;
  /** For what happens after a change is committed and cannot fail the call any more. */
  warn(message: string, details: Record<string, unknown>): void;
}

export type TokenService = ReturnType<typeof createTokenService>;

export function tokenNotFound(environment: string, id: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "TOKEN_NOT_FOUND",
    `token "${id}" does not exist in environment "${environment}"`,
    {
      environment,
      token: id,
    },
  );
}

function notActive(token: Token, state: TokenState): FailedPreconditionError {
  const detail = state === "rotated" && token.successorId ? `; its successor is ${token.successorId}` : "";
  return new FailedPreconditionError(
    "failed_precondition",
    "TOKEN_NOT_ACTIVE",
    `token "${token.id}" is ${state}${detail}`,
    { token: token.id, state },
  );
}

function fingerprintOf(caller: Caller, input: CreateTokenInput): string {
  const who = caller.kind === "admin" ? "admin" : caller.tokenId;
  const what = JSON.stringify([who, input.name, [...input.scopes].sort(), input.ttlMs ?? null]);
  return createHash("sha256").update(what).digest("hex");
}

/** API tokens of an environment: issue, read, list, revoke, rotate. */
export function createTokenService(deps: TokenServiceDeps) {
  const { store, invalidations, retirements, clock } = deps;

  function newToken(
    environment: string,
    id: string,
    fields: Pick<Token, "name" | "scopes" | "createdBy" | "expireTime" | "predecessorId">,
  ): { token: Token; secret: string } {
    const secret = generateSecret(environment);
    const token: Token = {
      id,
      environment,
      name: fields.name,
      scopes: fields.scopes,
      hash: hashSecret(secret),
      displayPrefix: displayPrefix(secret, environment),
      createTime: clock.now(),
      createdBy: fields.createdBy,
      state: "active",
      version: 1,
    };
    if (fields.expireTime) token.expireTime = fields.expireTime;
    if (fields.predecessorId) token.predecessorId = fields.predecessorId;
    return { token, secret };
  }

  async function get(environment: string, id: string): Promise<Token> {
    const token = await store.get(environment, id);
    if (!token) throw tokenNotFound(environment, id);
    return token;
  }

  /** A token may only hand out (create, or rotate into a new secret) scopes it has itself. */
  function checkScopes(caller: Caller, scopes: readonly string[], doing: string): void {
    if (caller.kind === "admin") return;
    const missing = scopes.find((scope) => !caller.scopes.has(scope));
    if (missing !== undefined) {
      throw new RoomkeyError(
        "permission_denied",
        "SCOPE_MISSING",
        `a token cannot ${doing} with scope ${missing}, which it lacks itself`,
        { scope: missing },
      );
    }
  }

  /**
   * Tells every replica that a token exists, so that their known-hash
   * filters let its secret through at once. Best effort: a replica that
   * misses it reloads its filter within the cache lifetime.
   */
  async function announce(environment: string, token: Token): Promise<void> {
    if (!(await invalidations.publish(environment, token.hash))) {
      deps.warn("replicas were not told of a new token", { environment, token: token.id });
    }
  }

  /**
   * Creates a token and returns its secret, once. With an idempotency key, a
   * repeat within 24 hours returns the first token's metadata and no secret.
   */
  async function create(
    environment: string,
    caller: Caller,
    input: CreateTokenInput,
  ): Promise<{ token: Token; secret?: string; replayed: boolean }> {
    checkScopes(caller, input.scopes, "create a token");
    const now = clock.now();
    let id = newId("tok", now);
    if (input.idempotencyKey) {
      const key = `create-token:${input.idempotencyKey}`;
      const record: IdempotencyRecord = { tokenId: id, fingerprint: fingerprintOf(caller, input), createTime: now };
      const existing = await claimIdempotencyKey(store, environment, key, record, input.idempotencyKey);
      if (existing) {
        const first = await store.get(environment, existing.tokenId);
        if (first) return { token: first, replayed: true };
        // The first request stopped before it wrote its token (a purge removes the key with its
        // token, so this is not a purged one): finish it, under the same id.
        id = existing.tokenId;
      }
    }
    const lifetime = input.ttlMs ?? (await deps.defaultLifetimeMs(environment));
    const { token, secret } = newToken(environment, id, {
      name: input.name,
      scopes: [...input.scopes],
      createdBy: caller.kind === "admin" ? "admin" : caller.tokenId,
      expireTime: lifetime === undefined ? undefined : new Date(now.getTime() + lifetime),
      predecessorId: undefined,
    });
    if (await store.insert(environment, token)) {
      await announce(environment, token);
      await deps.events?.created(environment, token);
      return { token, secret, replayed: false };
    }
    // A concurrent request with the same key wrote it first.
    return { token: await get(environment, id), replayed: true };
  }

  async function list(environment: string, state: TokenState | undefined, page: PageRequest): Promise<Page<Token>> {
    const filter = state === undefined ? { now: clock.now() } : { state, now: clock.now() };
    const items = await store.list(environment, filter, page);
    return toPage(items, page.size, (t) => t.id);
  }

  /**
   * Revokes a token (again: no change). Every replica has dropped it from its
   * cache once this returns, or drops it within a second.
   */
  async function revoke(environment: string, id: string): Promise<Token> {
    const at = clock.now();
    const token = await store.revoke(environment, id, at);
    if (!token) throw tokenNotFound(environment, id);
    // Revoking again changes nothing and tells nothing new.
    if (token.revokeTime?.getTime() === at.getTime()) await deps.events?.revoked(environment, token);
    if (!(await invalidations.publish(environment, token.hash))) {
      // Revoked for good, but replicas that cached it were not told: say so; a retry tells them.
      throw new RoomkeyError(
        "unavailable",
        "BACKEND_UNAVAILABLE",
        `token "${id}" is revoked, but other replicas could not be told (Redis is unavailable) and may accept it ` +
          `for up to ${Math.ceil(deps.cacheTtlMs / 1000)} s; call RevokeToken again once Redis is back`,
        { token: id },
      );
    }
    return token;
  }

  /**
   * Issues a successor with a new secret; the old one keeps working for a grace
   * period (default 24 hours, at most 7 days, never past its own expiry). Of
   * concurrent rotations of one token exactly one succeeds.
   */
  async function rotate(
    environment: string,
    caller: Caller,
    id: string,
    graceMs: number = defaultGraceMs,
  ): Promise<{ token: Token; secret: string; previous: Token }> {
    const old = await get(environment, id);
    // A new secret for a token is as good as creating it: only with scopes the caller has.
    checkScopes(caller, old.scopes, "rotate a token");
    const now = clock.now();
    const state = stateAt(old, now.getTime());
    if (state !== "active") throw notActive(old, state);
    const graceEnd = Math.min(now.getTime() + Math.min(graceMs, maxGraceMs), old.expireTime?.getTime() ?? Infinity);
    const { token, secret } = newToken(environment, newId("tok", now), {
      name: old.name,
      scopes: old.scopes,
      createdBy: caller.kind === "admin" ? "admin" : caller.tokenId,
      expireTime: old.expireTime,
      predecessorId: old.id,
    });
    // The successor first: a rotation cut short leaves a spare token, never a rotated token without successor.
    await store.insert(environment, token);
    const previous = await store.markRotated(environment, old.id, old.version, {
      rotateTime: now,
      graceExpireTime: new Date(graceEnd),
      successorId: token.id,
    });
    if (!previous) {
      await store.remove(environment, token.id);
      const current = await get(environment, id);
      throw notActive(current, stateAt(current, clock.now().getTime()));
    }
    // Committed: the caller must get the new secret whatever follows. Both steps are best effort:
    // replicas that miss the message hold the old token at most a cache lifetime past its grace,
    // and the sweep retires what the job does not.
    if (!(await invalidations.publish(environment, old.hash))) {
      deps.warn("replicas were not told of a rotation", { environment, token: old.id });
    }
    await announce(environment, token);
    await deps.events?.rotated(environment, token, previous);
    try {
      await retirements.retireAt(environment, old.id, new Date(graceEnd));
    } catch (error) {
      deps.warn("could not schedule the retirement of a rotated token; the sweep will", {
        environment,
        token: old.id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    return { token, secret, previous };
  }

  return { create, get, list, revoke, rotate };
}
