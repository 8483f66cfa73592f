import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FailedPreconditionError, NotFoundError, RoomkeyError } from "../../src/domain/errors.js";
import type { PageRequest } from "../../src/domain/paging.js";
import type {
  IdempotencyRecord,
  RetirementScheduler,
  TokenInvalidations,
  TokenStore,
} from "../../src/domain/tokens/ports.js";
import { hashSecret, inspectSecret } from "../../src/domain/tokens/token-secret.js";
import { type Caller, createTokenService } from "../../src/domain/tokens/token-service.js";
import { stateAt, type Token, type TokenState } from "../../src/domain/tokens/tokens.js";
import { asRoomkeyError, fakeClock, rejectionOf } from "../helpers/fakes.js";

const hour = 3_600_000;
const day = 24 * hour;

/** Yields to other pending calls, so concurrent callers really interleave. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** An in-memory TokenStore that keeps the repository's contract: unique ids and hashes, version checks. */
class FakeTokenStore implements TokenStore {
  readonly tokens = new Map<string, Map<string, Token>>();
  readonly idempotency = new Map<string, Map<string, IdempotencyRecord>>();
  readonly listFilters: { state?: TokenState; now: Date }[] = [];
  inserts = 0;
  /** Throws from the next insert, as if the process stopped before writing the token. */
  failNextInsert = false;

  private tokensOf(environment: string): Map<string, Token> {
    let found = this.tokens.get(environment);
    if (!found) {
      found = new Map();
      this.tokens.set(environment, found);
    }
    return found;
  }

  private keysOf(environment: string): Map<string, IdempotencyRecord> {
    let found = this.idempotency.get(environment);
    if (!found) {
      found = new Map();
      this.idempotency.set(environment, found);
    }
    return found;
  }

  async insert(environment: string, token: Token): Promise<boolean> {
    await tick();
    if (this.failNextInsert) {
      this.failNextInsert = false;
      throw new Error("MongoDB went away");
    }
    const tokens = this.tokensOf(environment);
    if (tokens.has(token.id) || [...tokens.values()].some((t) => t.hash === token.hash)) return false;
    this.inserts++;
    tokens.set(token.id, structuredClone(token));
    return true;
  }

  async get(environment: string, id: string): Promise<Token | undefined> {
    await tick();
    const found = this.tokensOf(environment).get(id);
    return found && structuredClone(found);
  }

  async list(environment: string, filter: { state?: TokenState; now: Date }, page: PageRequest): Promise<Token[]> {
    await tick();
    this.listFilters.push(filter);
    return [...this.tokensOf(environment).values()]
      .filter((t) => filter.state === undefined || stateAt(t, filter.now.getTime()) === filter.state)
      .filter((t) => page.after === undefined || t.id < page.after)
      .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, page.size + 1)
      .map((t) => structuredClone(t));
  }

  async revoke(environment: string, id: string, at: Date): Promise<Token | undefined> {
    await tick();
    const tokens = this.tokensOf(environment);
    const found = tokens.get(id);
    if (!found) return undefined;
    if (!found.revokeTime) {
      tokens.set(id, { ...found, revokeTime: at, state: "revoked", version: found.version + 1 });
    }
    return structuredClone(tokens.get(id));
  }

  async markRotated(
    environment: string,
    id: string,
    expectedVersion: number,
    rotation: { rotateTime: Date; graceExpireTime: Date; successorId: string },
  ): Promise<Token | undefined> {
    await tick();
    const tokens = this.tokensOf(environment);
    const found = tokens.get(id);
    if (!found || found.version !== expectedVersion || found.revokeTime || found.rotateTime) return undefined;
    const updated: Token = { ...found, ...rotation, state: "rotated", version: found.version + 1 };
    tokens.set(id, updated);
    return structuredClone(updated);
  }

  async remove(environment: string, id: string): Promise<void> {
    await tick();
    this.tokensOf(environment).delete(id);
  }

  async claimIdempotency(
    environment: string,
    key: string,
    record: IdempotencyRecord,
  ): Promise<IdempotencyRecord | undefined> {
    await tick();
    const keys = this.keysOf(environment);
    const existing = keys.get(key);
    if (existing) return structuredClone(existing);
    keys.set(key, structuredClone(record));
    return undefined;
  }

  async replaceIdempotency(
    environment: string,
    key: string,
    expectedCreateTime: Date,
    record: IdempotencyRecord,
  ): Promise<boolean> {
    await tick();
    const keys = this.keysOf(environment);
    const existing = keys.get(key);
    if (!existing || existing.createTime.getTime() !== expectedCreateTime.getTime()) return false;
    keys.set(key, structuredClone(record));
    return true;
  }

  put(token: Token): void {
    this.tokensOf(token.environment).set(token.id, structuredClone(token));
  }

  stored(environment: string, id: string): Token {
    const found = this.tokens.get(environment)?.get(id);
    if (!found) throw new Error(`no token ${id}`);
    return found;
  }

  all(environment: string): Token[] {
    return [...this.tokensOf(environment).values()];
  }
}

function setup(options: { defaultLifetimeMs?: number } = {}) {
  const store = new FakeTokenStore();
  const clock = fakeClock();
  const published: { environment: string; hash: string }[] = [];
  const retirements: { environment: string; tokenId: string; at: Date }[] = [];
  const lifetimeAsked: string[] = [];
  let delivered = true;
  const invalidations: TokenInvalidations = {
    async publish(environment, hash) {
      published.push({ environment, hash });
      return delivered;
    },
  };
  const warnings: string[] = [];
  const scheduler: RetirementScheduler = {
    async retireAt(environment, tokenId, at) {
      retirements.push({ environment, tokenId, at });
    },
  };
  const service = createTokenService({
    store,
    invalidations,
    retirements: scheduler,
    cacheTtlMs: 30_000,
    warn: (message) => warnings.push(message),
    async defaultLifetimeMs(environment) {
      lifetimeAsked.push(environment);
      return options.defaultLifetimeMs;
    },
    clock,
  });
  const undelivered = () => {
    delivered = false;
  };
  return { service, store, clock, published, retirements, lifetimeAsked, warnings, undelivered };
}

const admin: Caller = { kind: "admin" };

function tokenCaller(scopes: string[], tokenId = "tok_caller"): Caller {
  return { kind: "token", tokenId, scopes: new Set(scopes) };
}

let seeded = 0;
function record(overrides: Partial<Token> = {}): Token {
  seeded++;
  return {
    id: `tok_seed${String(seeded).padStart(18, "0")}`,
    environment: "staging",
    name: `seeded ${seeded}`,
    scopes: ["tokens:read", "tokens:write"],
    hash: createHash("sha256").update(`seed-${seeded}`).digest("hex"),
    displayPrefix: "rk_staging_seed…",
    createTime: new Date(Date.UTC(2029, 11, 31)),
    createdBy: "admin",
    state: "active",
    version: 1,
    ...overrides,
  };
}

describe("create", () => {
  it("when a token is created, then its secret hashes to the stored hash and the secret is stored nowhere", async () => {
    const { service, store, published, retirements } = setup();

    const { token, secret, replayed } = await service.create("staging", admin, {
      name: "ci",
      scopes: ["tokens:read"],
      idempotencyKey: "key-1",
    });

    if (secret === undefined) throw new Error("expected a secret");
    expect(replayed).toBe(false);
    expect(inspectSecret(secret)).toEqual({ kind: "token", environment: "staging" });
    expect(createHash("sha256").update(secret).digest("hex")).toBe(store.stored("staging", token.id).hash);
    expect(store.stored("staging", token.id)).toMatchObject({
      name: "ci",
      scopes: ["tokens:read"],
      createdBy: "admin",
      state: "active",
      version: 1,
      displayPrefix: `${secret.slice(0, "rk_staging_".length + 4)}…`,
    });
    const everything = JSON.stringify({
      tokens: [...store.tokens].map(([env, tokens]) => [env, [...tokens]]),
      keys: [...store.idempotency].map(([env, keys]) => [env, [...keys]]),
      token,
      published,
      retirements,
    });
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain(secret.slice("rk_staging_".length + 4));
  });

  it("when a token is created, then its hash is announced so that every replica's filter lets it through", async () => {
    const { service, published } = setup();
    const { token } = await service.create("staging", admin, { name: "ci", scopes: ["tokens:read"] });
    expect(published).toEqual([{ environment: "staging", hash: token.hash }]);
  });

  it("when a token caller asks for a scope it lacks, then PERMISSION_DENIED SCOPE_MISSING naming it and nothing is stored", async () => {
    const { service, store } = setup();

    const error = asRoomkeyError(
      await rejectionOf(
        service.create("staging", tokenCaller(["tokens:read"]), { name: "x", scopes: ["tokens:read", "tokens:write"] }),
      ),
    );

    expect(error).toMatchObject({
      kind: "permission_denied",
      reason: "SCOPE_MISSING",
      metadata: { scope: "tokens:write" },
    });
    expect(error.message).toContain("tokens:write");
    expect(store.inserts).toBe(0);
  });

  it("when a token caller grants a subset of its scopes, then the token is created with them, by that caller", async () => {
    const { service, store } = setup();

    const { token } = await service.create("staging", tokenCaller(["tokens:read", "tokens:write"], "tok_parent"), {
      name: "child",
      scopes: ["tokens:read"],
    });

    expect(store.stored("staging", token.id)).toMatchObject({ scopes: ["tokens:read"], createdBy: "tok_parent" });
  });

  it("when the admin grants any scopes, then the token is created with them", async () => {
    const { service, store } = setup();

    const { token } = await service.create("staging", admin, { name: "all", scopes: ["a.b", "c.d", "tokens:write"] });

    expect(store.stored("staging", token.id).scopes).toEqual(["a.b", "c.d", "tokens:write"]);
  });

  it("when a ttl is given, then the token expires ttl after now, ahead of the environment default", async () => {
    const { service, store, clock } = setup({ defaultLifetimeMs: 30 * day });

    const { token } = await service.create("staging", admin, { name: "x", scopes: [], ttlMs: hour });

    expect(store.stored("staging", token.id).expireTime).toEqual(new Date(clock.now().getTime() + hour));
  });

  it("when no ttl is given, then the environment's default lifetime sets the expiry", async () => {
    const { service, store, clock, lifetimeAsked } = setup({ defaultLifetimeMs: 30 * day });

    const { token } = await service.create("staging", admin, { name: "x", scopes: [] });

    expect(lifetimeAsked).toEqual(["staging"]);
    expect(store.stored("staging", token.id).expireTime).toEqual(new Date(clock.now().getTime() + 30 * day));
  });

  it("when neither a ttl nor a default lifetime is set, then the token never expires", async () => {
    const { service, store } = setup();

    const { token } = await service.create("staging", admin, { name: "x", scopes: [] });

    expect(store.stored("staging", token.id).expireTime).toBeUndefined();
    expect("expireTime" in store.stored("staging", token.id)).toBe(false);
  });
});

describe("create with an idempotency key", () => {
  it("when the same key comes with the same request, then the first token comes back, replayed, without a secret", async () => {
    const { service, store, clock } = setup();
    const input = { name: "ci", scopes: ["b", "a"], idempotencyKey: "key-1" };
    const first = await service.create("staging", admin, input);
    clock.advance(day - 1);

    const again = await service.create("staging", admin, { ...input, scopes: ["a", "b"] });

    expect(again.replayed).toBe(true);
    expect(again.secret).toBeUndefined();
    expect(again.token).toEqual(first.token);
    expect(store.all("staging")).toHaveLength(1);
  });

  it("when the same key comes with a different request, then FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED", async () => {
    const { service, store } = setup();
    await service.create("staging", admin, { name: "ci", scopes: ["a"], idempotencyKey: "key-1" });

    const differences = [
      { name: "other", scopes: ["a"] },
      { name: "ci", scopes: ["a", "b"] },
      { name: "ci", scopes: ["a"], ttlMs: hour },
    ];
    for (const difference of differences) {
      const error = await rejectionOf(service.create("staging", admin, { ...difference, idempotencyKey: "key-1" }));
      expect(error).toBeInstanceOf(FailedPreconditionError);
      expect(asRoomkeyError(error)).toMatchObject({ kind: "failed_precondition", reason: "IDEMPOTENCY_KEY_REUSED" });
    }
    const otherCaller = await rejectionOf(
      service.create("staging", tokenCaller(["a"]), { name: "ci", scopes: ["a"], idempotencyKey: "key-1" }),
    );
    expect(asRoomkeyError(otherCaller).reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(store.all("staging")).toHaveLength(1);
  });

  it("when the key is more than 24 hours old, then a new token is created under it", async () => {
    const { service, store, clock } = setup();
    const input = { name: "ci", scopes: ["a"], idempotencyKey: "key-1" };
    const first = await service.create("staging", admin, input);
    clock.advance(day + 1);

    const second = await service.create("staging", admin, input);

    expect(second.replayed).toBe(false);
    expect(second.secret).toBeDefined();
    expect(second.token.id).not.toBe(first.token.id);
    expect(store.all("staging")).toHaveLength(2);

    const third = await service.create("staging", admin, input);
    expect(third).toMatchObject({ replayed: true, token: { id: second.token.id } });
  });

  it("when the key was claimed but its token never written, then the retry creates the token under the claimed id", async () => {
    const { service, store } = setup();
    const input = { name: "ci", scopes: ["a"], idempotencyKey: "key-1" };
    store.failNextInsert = true;
    await expect(service.create("staging", admin, input)).rejects.toThrow("MongoDB went away");
    const claimed = store.idempotency.get("staging")?.get("create-token:key-1");
    if (!claimed) throw new Error("expected the key to be claimed");
    expect(store.all("staging")).toEqual([]);

    const retry = await service.create("staging", admin, input);

    expect(retry.replayed).toBe(false);
    expect(retry.token.id).toBe(claimed.tokenId);
    if (retry.secret === undefined) throw new Error("expected a secret");
    expect(store.stored("staging", claimed.tokenId).hash).toBe(hashSecret(retry.secret));
    expect(store.all("staging")).toHaveLength(1);
  });

  it("when the same key is used concurrently, then one token is stored and exactly one caller gets its secret", async () => {
    const { service, store } = setup();
    const input = { name: "ci", scopes: ["a"], idempotencyKey: "key-1" };

    const results = await Promise.all([1, 2, 3].map(() => service.create("staging", admin, input)));

    expect(store.all("staging")).toHaveLength(1);
    const [stored] = store.all("staging");
    expect(results.map((r) => r.token.id)).toEqual([stored?.id, stored?.id, stored?.id]);
    const fresh = results.filter((r) => !r.replayed);
    expect(fresh).toHaveLength(1);
    expect(hashSecret(fresh[0]?.secret ?? "")).toBe(stored?.hash);
  });
});

describe("revoke", () => {
  it("when a token is revoked, then it is marked and its hash is published", async () => {
    const { service, store, clock, published } = setup();
    const token = record();
    store.put(token);

    const revoked = await service.revoke("staging", token.id);

    expect(revoked).toMatchObject({ id: token.id, state: "revoked", revokeTime: clock.now() });
    expect(store.stored("staging", token.id).revokeTime).toEqual(clock.now());
    expect(published).toEqual([{ environment: "staging", hash: token.hash }]);
  });

  it("when a token is revoked twice, then the second call returns it still revoked at the first time", async () => {
    const { service, store, clock } = setup();
    const token = record();
    store.put(token);
    const first = await service.revoke("staging", token.id);
    clock.advance(hour);

    const second = await service.revoke("staging", token.id);

    expect(second).toEqual(first);
    expect(store.stored("staging", token.id)).toEqual(first);
  });

  it("when the token does not exist, then NOT_FOUND TOKEN_NOT_FOUND and nothing is published", async () => {
    const { service, published } = setup();

    const error = await rejectionOf(service.revoke("staging", "tok_missing"));

    expect(error).toBeInstanceOf(NotFoundError);
    expect(asRoomkeyError(error)).toMatchObject({
      kind: "not_found",
      reason: "TOKEN_NOT_FOUND",
      metadata: { environment: "staging", token: "tok_missing" },
    });
    expect(published).toEqual([]);
  });
});

describe("rotate", () => {
  it("when a token is rotated, then a successor with a new secret and the same name, scopes and expiry is stored", async () => {
    const { service, store, clock } = setup();
    const expireTime = new Date(clock.now().getTime() + 30 * day);
    const old = record({ name: "deploy", scopes: ["x.y"], expireTime, createdBy: "tok_parent" });
    store.put(old);

    const { token, secret, previous } = await service.rotate("staging", admin, old.id);

    expect(token.id).not.toBe(old.id);
    expect(hashSecret(secret)).toBe(token.hash);
    expect(token.hash).not.toBe(old.hash);
    expect(inspectSecret(secret)).toEqual({ kind: "token", environment: "staging" });
    expect(store.stored("staging", token.id)).toEqual(token);
    expect(token).toMatchObject({
      name: "deploy",
      scopes: ["x.y"],
      expireTime,
      predecessorId: old.id,
      // A successor is created by whoever rotated: here the admin.
      createdBy: "admin",
      state: "active",
    });
    expect(previous).toEqual(store.stored("staging", old.id));
  });

  it("when a token is rotated, then the old one is marked rotated with a 24-hour grace, published and scheduled to retire", async () => {
    const { service, store, clock, published, retirements } = setup();
    const old = record();
    store.put(old);
    const graceEnd = new Date(clock.now().getTime() + day);

    const { token } = await service.rotate("staging", admin, old.id);

    expect(store.stored("staging", old.id)).toMatchObject({
      rotateTime: clock.now(),
      graceExpireTime: graceEnd,
      successorId: token.id,
      state: "rotated",
    });
    expect(published).toEqual([
      { environment: "staging", hash: old.hash },
      { environment: "staging", hash: token.hash },
    ]);
    expect(retirements).toEqual([{ environment: "staging", tokenId: old.id, at: graceEnd }]);
  });

  it("when a grace of more than 7 days is asked, then it is capped at 7 days", async () => {
    const { service, store, clock, retirements } = setup();
    const old = record();
    store.put(old);

    await service.rotate("staging", admin, old.id, 30 * day);

    const capped = new Date(clock.now().getTime() + 7 * day);
    expect(store.stored("staging", old.id).graceExpireTime).toEqual(capped);
    expect(retirements.map((r) => r.at)).toEqual([capped]);
  });

  it("when a shorter grace is asked, then it is used", async () => {
    const { service, store, clock } = setup();
    const old = record();
    store.put(old);

    await service.rotate("staging", admin, old.id, hour);

    expect(store.stored("staging", old.id).graceExpireTime).toEqual(new Date(clock.now().getTime() + hour));
  });

  it("when the old token expires before the grace would end, then the grace ends at its expiry", async () => {
    const { service, store, clock, retirements } = setup();
    const expireTime = new Date(clock.now().getTime() + 2 * hour);
    const old = record({ expireTime });
    store.put(old);

    await service.rotate("staging", admin, old.id);

    expect(store.stored("staging", old.id).graceExpireTime).toEqual(expireTime);
    expect(retirements.map((r) => r.at)).toEqual([expireTime]);
  });

  it("when the token is revoked, rotated or expired, then FAILED_PRECONDITION TOKEN_NOT_ACTIVE and nothing changes", async () => {
    const { service, store, clock, published, retirements } = setup();
    const now = clock.now().getTime();
    const cases: [Token, TokenState][] = [
      [record({ revokeTime: new Date(now - 1), state: "revoked" }), "revoked"],
      [
        record({
          rotateTime: new Date(now - 1),
          graceExpireTime: new Date(now + day),
          successorId: "tok_next",
          state: "rotated",
        }),
        "rotated",
      ],
      [record({ expireTime: new Date(now) }), "expired"],
    ];
    for (const [token] of cases) store.put(token);
    const before = structuredClone(store.all("staging"));

    for (const [token, state] of cases) {
      const error = await rejectionOf(service.rotate("staging", admin, token.id));
      expect(error).toBeInstanceOf(FailedPreconditionError);
      expect(asRoomkeyError(error)).toMatchObject({
        kind: "failed_precondition",
        reason: "TOKEN_NOT_ACTIVE",
        metadata: { token: token.id, state },
      });
      if (state === "rotated") expect(asRoomkeyError(error).message).toContain("tok_next");
    }
    expect(store.all("staging")).toEqual(before);
    expect(store.inserts).toBe(0);
    expect(published).toEqual([]);
    expect(retirements).toEqual([]);
  });

  it("when the token does not exist, then NOT_FOUND TOKEN_NOT_FOUND", async () => {
    const { service } = setup();
    expect(asRoomkeyError(await rejectionOf(service.rotate("staging", admin, "tok_missing"))).reason).toBe(
      "TOKEN_NOT_FOUND",
    );
  });

  it("when one token is rotated twice at once, then exactly one successor is stored and the other call fails", async () => {
    const { service, store, published, retirements } = setup();
    const old = record();
    store.put(old);

    const results = await Promise.allSettled([
      service.rotate("staging", admin, old.id),
      service.rotate("staging", admin, old.id),
    ]);

    const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    expect(store.inserts).toBe(2);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(asRoomkeyError(lost[0])).toMatchObject({ reason: "TOKEN_NOT_ACTIVE", metadata: { state: "rotated" } });
    const successors = store.all("staging").filter((t) => t.predecessorId === old.id);
    expect(successors.map((t) => t.id)).toEqual([won[0]?.token.id]);
    expect(store.stored("staging", old.id).successorId).toBe(won[0]?.token.id);
    expect(published).toEqual([
      { environment: "staging", hash: old.hash },
      { environment: "staging", hash: won[0]?.token.hash },
    ]);
    expect(retirements).toHaveLength(1);
  });
});

describe("list", () => {
  it("when a state is asked, then the store filters by it at the current time", async () => {
    const { service, store, clock } = setup();
    const now = clock.now().getTime();
    const active = record({ id: "tok_1" });
    const expiredButStoredActive = record({ id: "tok_2", expireTime: new Date(now - 1) });
    const revoked = record({ id: "tok_3", revokeTime: new Date(now - 1), state: "revoked" });
    const rotated = record({ id: "tok_4", rotateTime: new Date(now - 1), graceExpireTime: new Date(now + 1) });
    for (const token of [active, expiredButStoredActive, revoked, rotated]) store.put(token);
    const page = { after: undefined, size: 10 };

    expect((await service.list("staging", "active", page)).items.map((t) => t.id)).toEqual(["tok_1"]);
    expect((await service.list("staging", "expired", page)).items.map((t) => t.id)).toEqual(["tok_2"]);
    expect((await service.list("staging", "revoked", page)).items.map((t) => t.id)).toEqual(["tok_3"]);
    expect((await service.list("staging", "rotated", page)).items.map((t) => t.id)).toEqual(["tok_4"]);
    expect((await service.list("staging", undefined, page)).items.map((t) => t.id)).toEqual([
      "tok_4",
      "tok_3",
      "tok_2",
      "tok_1",
    ]);
    expect(store.listFilters[0]).toEqual({ state: "active", now: clock.now() });
    expect(store.listFilters[4]).toEqual({ now: clock.now() });
  });

  it("when there are more tokens than the page size, then a page and the key to continue after come back", async () => {
    const { service, store } = setup();
    for (const id of ["tok_1", "tok_2", "tok_3"]) store.put(record({ id }));

    const page = await service.list("staging", "active", { after: undefined, size: 2 });

    expect(page.items.map((t) => t.id)).toEqual(["tok_3", "tok_2"]);
    expect(page.nextAfter).toBe("tok_2");
    const rest = await service.list("staging", "active", { after: "tok_2", size: 2 });
    expect(rest.items.map((t) => t.id)).toEqual(["tok_1"]);
    expect(rest.nextAfter).toBeUndefined();
  });
});

describe("get", () => {
  it("when the token does not exist, then NotFoundError TOKEN_NOT_FOUND", async () => {
    const { service } = setup();
    const error = await rejectionOf(service.get("staging", "tok_missing"));
    expect(error).toBeInstanceOf(RoomkeyError);
    expect(asRoomkeyError(error).reason).toBe("TOKEN_NOT_FOUND");
  });
});

describe("rotate, revoke and a Redis that cannot be reached", () => {
  it("when a token rotates a token with scopes it lacks, then PERMISSION_DENIED names the scope and nothing changes", async () => {
    const { service, store } = setup();
    const strong = await service.create("staging", admin, {
      name: "strong",
      scopes: ["accounts:credentials", "tokens:read"],
    });
    const weak = tokenCaller(["tokens:write", "tokens:read"], "tok_weak");
    const error = asRoomkeyError(await rejectionOf(service.rotate("staging", weak, strong.token.id)));
    expect(error).toMatchObject({ kind: "permission_denied", reason: "SCOPE_MISSING" });
    expect(error.metadata.scope).toBe("accounts:credentials");
    expect(store.tokens.get("staging")?.size).toBe(1);
    const own = await service.create("staging", admin, { name: "own", scopes: ["tokens:read"] });
    const rotated = await service.rotate("staging", weak, own.token.id);
    expect(rotated.token.createdBy).toBe("tok_weak");
  });

  it("when the rotation's messages cannot be sent, then the new secret is still returned and the problem logged", async () => {
    const { service, undelivered, warnings } = setup();
    const old = await service.create("staging", admin, { name: "t", scopes: ["tokens:read"] });
    undelivered();
    const rotated = await service.rotate("staging", admin, old.token.id);
    expect(rotated.secret).toMatch(/^rk_staging_/);
    expect(warnings).toContain("replicas were not told of a rotation");
  });

  it("when a revocation cannot be announced, then it is kept but the call says UNAVAILABLE, and a retry announces it", async () => {
    const { service, store, undelivered, published } = setup();
    const token = await service.create("staging", admin, { name: "t", scopes: ["tokens:read"] });
    undelivered();
    const error = asRoomkeyError(await rejectionOf(service.revoke("staging", token.token.id)));
    expect(error).toMatchObject({ kind: "unavailable", reason: "BACKEND_UNAVAILABLE" });
    expect(error.message).not.toContain(token.secret ?? "no secret");
    expect(store.tokens.get("staging")?.get(token.token.id)?.revokeTime).toBeDefined();
    // Announced at creation, then tried (and not delivered) at revocation.
    expect(published).toEqual([
      { environment: "staging", hash: token.token.hash },
      { environment: "staging", hash: token.token.hash },
    ]);
  });
});
