import { describe, expect, it } from "vitest";
import type { TokenLookup, UsageSink } from "../../src/domain/tokens/ports.js";
import { generateSecret, hashSecret } from "../../src/domain/tokens/token-secret.js";
import { createTokenVerifier } from "../../src/domain/tokens/token-verifier.js";
import type { Token } from "../../src/domain/tokens/tokens.js";
import { type Deferred, deferred, fakeClock, settle } from "../helpers/fakes.js";

const ttlMs = 60_000;
const negativeTtlMs = 5_000;

/** Tokens by hash, counting every lookup; with a gate, a lookup reads at once and answers when the test says. */
class FakeLookup implements TokenLookup {
  readonly tokens = new Map<string, Token>();
  readonly calls: { environment: string; hash: string }[] = [];
  gate: Deferred<void> | undefined;
  readonly hashLoads: string[] = [];
  hashGate: Deferred<void> | undefined;
  failHashes = false;

  async listHashes(environment: string): Promise<string[]> {
    this.hashLoads.push(environment);
    const hashes = [...this.tokens.values()].filter((t) => t.environment === environment).map((t) => t.hash);
    if (this.hashGate) await this.hashGate.promise;
    if (this.failHashes) throw new Error("MongoDB unavailable");
    return hashes;
  }

  async findByHash(environment: string, hash: string): Promise<Token | undefined> {
    this.calls.push({ environment, hash });
    const found = this.tokens.get(hash);
    if (this.gate) await this.gate.promise;
    return found && found.environment === environment ? structuredClone(found) : undefined;
  }

  lookupsOf(hash: string): number {
    return this.calls.filter((call) => call.hash === hash).length;
  }

  put(token: Token): void {
    this.tokens.set(token.hash, structuredClone(token));
  }

  change(hash: string, fields: Partial<Token>): void {
    const found = this.tokens.get(hash);
    if (!found) throw new Error(`no token ${hash}`);
    this.tokens.set(hash, { ...found, ...fields });
  }
}

class FakeUsage implements UsageSink {
  readonly records: [string, string, number][] = [];
  record(environment: string, tokenId: string, at: number): void {
    this.records.push([environment, tokenId, at]);
  }
}

function setup(options: { maxEntries?: number; environments?: string[]; filter?: boolean } = {}) {
  const lookup = new FakeLookup();
  const usage = new FakeUsage();
  const clock = fakeClock();
  const environments = new Set(options.environments ?? ["staging", "production"]);
  const existsCalls: string[] = [];
  const verifier = createTokenVerifier({
    lookup,
    async environmentExists(name) {
      existsCalls.push(name);
      return environments.has(name);
    },
    usage,
    clock,
    ttlMs,
    negativeTtlMs,
    maxEntries: options.maxEntries ?? 1_000,
    ...(options.filter ? { knownHashes: lookup, environmentKnown: (name: string) => environments.has(name) } : {}),
  });

  let count = 0;
  /** A stored token with a fresh secret; returns both. */
  function issue(environment: string, fields: Partial<Token> = {}): { token: Token; secret: string } {
    count++;
    const secret = generateSecret(environment);
    const token: Token = {
      id: `tok_${String(count).padStart(22, "0")}`,
      environment,
      name: `token ${count}`,
      scopes: ["tokens:read"],
      hash: hashSecret(secret),
      displayPrefix: "",
      createTime: clock.now(),
      createdBy: "admin",
      state: "active",
      version: 1,
      ...fields,
    };
    lookup.put(token);
    return { token, secret };
  }

  return { verifier, lookup, usage, clock, environments, existsCalls, issue };
}

describe("verify without a lookup", () => {
  it("when the secret is malformed, then malformed and neither the lookup nor environmentExists is called", async () => {
    const { verifier, lookup, existsCalls, usage } = setup();

    for (const secret of ["", "rk_staging_short", "Bearer abc", `${generateSecret("staging")}x`]) {
      expect(await verifier.verify(secret, "staging")).toEqual({ status: "malformed", inGrace: false });
    }
    expect(lookup.calls).toEqual([]);
    expect(existsCalls).toEqual([]);
    expect(usage.records).toEqual([]);
  });

  it("when the checksum does not match, then bad_checksum and neither the lookup nor environmentExists is called", async () => {
    const { verifier, lookup, existsCalls, issue } = setup();
    const { secret } = issue("staging");
    const last = secret.slice(-1);
    const typo = secret.slice(0, -1) + (last === "0" ? "1" : "0");

    expect(await verifier.verify(typo, "staging")).toEqual({
      status: "bad_checksum",
      environment: "staging",
      inGrace: false,
    });
    expect(lookup.calls).toEqual([]);
    expect(existsCalls).toEqual([]);
  });

  it("when the secret names another environment, then wrong_environment and nothing is called", async () => {
    const { verifier, lookup, existsCalls, issue } = setup();
    const { secret } = issue("production");

    expect(await verifier.verify(secret, "staging")).toEqual({
      status: "wrong_environment",
      environment: "production",
      inGrace: false,
    });
    expect(lookup.calls).toEqual([]);
    expect(existsCalls).toEqual([]);
  });

  it("when the environment does not exist, then unknown without a lookup", async () => {
    const { verifier, lookup, existsCalls } = setup({ environments: ["production"] });
    const secret = generateSecret("staging");

    expect(await verifier.verify(secret, "staging")).toEqual({
      status: "unknown",
      environment: "staging",
      inGrace: false,
    });
    expect(existsCalls).toEqual(["staging"]);
    expect(lookup.calls).toEqual([]);
  });
});

describe("caching", () => {
  it("when a valid token is verified many times, then it is looked up once and served from the cache", async () => {
    const { verifier, lookup, issue } = setup();
    const { token, secret } = issue("staging");

    for (let i = 0; i < 10; i++) {
      const result = await verifier.verify(secret, "staging");
      expect(result).toMatchObject({ status: "valid", environment: "staging", inGrace: false });
      expect(result.token?.id).toBe(token.id);
      expect([...(result.token?.scopes ?? [])]).toEqual(["tokens:read"]);
    }
    expect(lookup.calls).toEqual([{ environment: "staging", hash: token.hash }]);
    expect(verifier.size()).toBe(1);
  });

  it("when an uncached token is verified concurrently, then all callers share one lookup", async () => {
    const { verifier, lookup, issue } = setup();
    const { token, secret } = issue("staging");
    lookup.gate = deferred();

    const pending = Promise.all([1, 2, 3, 4, 5].map(() => verifier.verify(secret, "staging")));
    await settle();
    lookup.gate.resolve();
    const results = await pending;

    expect(lookup.lookupsOf(token.hash)).toBe(1);
    for (const result of results) expect(result.status).toBe("valid");
  });

  it("when a token is unknown, then that answer is kept for negativeTtlMs and the token is looked up again after", async () => {
    const { verifier, lookup, clock, issue } = setup();
    const secret = generateSecret("staging");
    const hash = hashSecret(secret);

    expect((await verifier.verify(secret, "staging")).status).toBe("unknown");
    issue("staging", { hash, id: "tok_late" });
    clock.advance(negativeTtlMs - 1);
    expect((await verifier.verify(secret, "staging")).status).toBe("unknown");
    expect(lookup.lookupsOf(hash)).toBe(1);

    clock.advance(1);
    const after = await verifier.verify(secret, "staging");

    expect(after.status).toBe("valid");
    expect(after.token?.id).toBe("tok_late");
    expect(lookup.lookupsOf(hash)).toBe(2);
  });

  it("when ttlMs has passed, then a cached token is looked up again and changes are seen", async () => {
    const { verifier, lookup, clock, issue } = setup();
    const { token, secret } = issue("staging");
    await verifier.verify(secret, "staging");
    lookup.change(token.hash, { revokeTime: clock.now(), state: "revoked" });

    clock.advance(ttlMs - 1);
    expect((await verifier.verify(secret, "staging")).status).toBe("valid");
    expect(lookup.lookupsOf(token.hash)).toBe(1);

    clock.advance(1);
    expect((await verifier.verify(secret, "staging")).status).toBe("revoked");
    expect(lookup.lookupsOf(token.hash)).toBe(2);
  });

  it("when a token is invalidated, then the next verify looks it up again", async () => {
    const { verifier, lookup, clock, issue } = setup();
    const { token, secret } = issue("staging");
    await verifier.verify(secret, "staging");
    lookup.change(token.hash, { revokeTime: clock.now(), state: "revoked" });

    verifier.invalidate(token.hash);

    expect((await verifier.verify(secret, "staging")).status).toBe("revoked");
    expect(lookup.lookupsOf(token.hash)).toBe(2);
  });

  it("when an invalidation arrives during a lookup, then that lookup does not populate the cache", async () => {
    const { verifier, lookup, issue } = setup();
    const { token, secret } = issue("staging");
    lookup.gate = deferred();

    const first = verifier.verify(secret, "staging");
    await settle();
    verifier.invalidate(token.hash);
    lookup.gate.resolve();
    expect((await first).status).toBe("valid");
    expect(verifier.size()).toBe(0);

    await verifier.verify(secret, "staging");
    expect(lookup.lookupsOf(token.hash)).toBe(2);
  });

  // Fails today: see the report. invalidate() leaves the in-flight lookup in `loading`, so a verify that starts
  // after a revoke has returned joins a lookup that may have read the token before the revoke.
  it("when a verify starts after an invalidation while an older lookup is in flight, then it does its own lookup", async () => {
    const { verifier, lookup, clock, issue } = setup();
    const { token, secret } = issue("staging");
    const stale = deferred<void>();
    lookup.gate = stale;

    const before = verifier.verify(secret, "staging");
    await settle();
    // The revoke lands in storage, then the replica is told; the older lookup read the token before it.
    lookup.change(token.hash, { revokeTime: clock.now(), state: "revoked" });
    verifier.invalidate(token.hash);
    lookup.gate = undefined;
    const after = verifier.verify(secret, "staging");
    await settle();
    stale.resolve();

    expect((await before).status).toBe("valid");
    expect((await after).status).toBe("revoked");
    expect(lookup.lookupsOf(token.hash)).toBe(2);
  });

  it("when an environment is invalidated, then only its tokens are looked up again", async () => {
    const { verifier, lookup, issue } = setup();
    const staging = issue("staging");
    const production = issue("production");
    await verifier.verify(staging.secret, "staging");
    await verifier.verify(production.secret, "production");
    expect(verifier.size()).toBe(2);

    verifier.invalidateEnvironment("staging");

    expect(verifier.size()).toBe(1);
    await verifier.verify(staging.secret, "staging");
    await verifier.verify(production.secret, "production");
    expect(lookup.lookupsOf(staging.token.hash)).toBe(2);
    expect(lookup.lookupsOf(production.token.hash)).toBe(1);
  });

  it("when the cache is cleared, then every token is looked up again", async () => {
    const { verifier, lookup, issue } = setup();
    const staging = issue("staging");
    const production = issue("production");
    await verifier.verify(staging.secret, "staging");
    await verifier.verify(production.secret, "production");

    verifier.clear();

    expect(verifier.size()).toBe(0);
    await verifier.verify(staging.secret, "staging");
    await verifier.verify(production.secret, "production");
    expect(lookup.lookupsOf(staging.token.hash)).toBe(2);
    expect(lookup.lookupsOf(production.token.hash)).toBe(2);
  });

  it("when more tokens are verified than maxEntries, then the cache stays bounded and drops the oldest", async () => {
    const { verifier, lookup, issue } = setup({ maxEntries: 2 });
    const issued = [issue("staging"), issue("staging"), issue("staging"), issue("staging")];

    for (const { secret } of issued) {
      await verifier.verify(secret, "staging");
      expect(verifier.size()).toBeLessThanOrEqual(2);
    }
    expect(verifier.size()).toBe(2);

    const [first, , , last] = issued;
    if (!first || !last) throw new Error("setup");
    await verifier.verify(last.secret, "staging");
    expect(lookup.lookupsOf(last.token.hash)).toBe(1);
    await verifier.verify(first.secret, "staging");
    expect(lookup.lookupsOf(first.token.hash)).toBe(2);
    expect(verifier.size()).toBe(2);
  });
});

describe("statuses", () => {
  it("when the token's expiry has passed, then expired, even while it is cached", async () => {
    const { verifier, clock, issue } = setup();
    const { secret } = issue("staging", { expireTime: new Date(clock.now().getTime() + 1_000) });

    expect((await verifier.verify(secret, "staging")).status).toBe("valid");
    clock.advance(1_000);
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "expired", inGrace: false });
  });

  it("when the token is revoked, then revoked", async () => {
    const { verifier, clock, issue } = setup();
    const { token, secret } = issue("staging", { revokeTime: new Date(clock.now().getTime() - 1), state: "revoked" });

    const result = await verifier.verify(secret, "staging");

    expect(result).toMatchObject({ status: "revoked", environment: "staging", inGrace: false });
    expect(result.token?.id).toBe(token.id);
  });

  it("when the token was rotated and its grace has not ended, then valid and inGrace; after it, rotated", async () => {
    const { verifier, clock, issue } = setup();
    const now = clock.now().getTime();
    const { secret } = issue("staging", {
      rotateTime: new Date(now - 1_000),
      graceExpireTime: new Date(now + 10_000),
      successorId: "tok_next",
      state: "rotated",
    });

    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "valid", inGrace: true });
    clock.advance(9_999);
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "valid", inGrace: true });
    clock.advance(1);
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "rotated", inGrace: false });
  });
});

describe("usage", () => {
  it("when tokens are verified, then usage is recorded only for valid ones, with the token id and the time", async () => {
    const { verifier, usage, clock, issue } = setup();
    const now = clock.now().getTime();
    const valid = issue("staging");
    const inGrace = issue("staging", { rotateTime: new Date(now), graceExpireTime: new Date(now + 60_000) });
    const revoked = issue("staging", { revokeTime: new Date(now) });
    const expired = issue("staging", { expireTime: new Date(now) });
    const rotated = issue("staging", { rotateTime: new Date(now - 2), graceExpireTime: new Date(now - 1) });

    await verifier.verify(valid.secret, "staging");
    clock.advance(5);
    await verifier.verify(valid.secret, "staging");
    await verifier.verify(inGrace.secret, "staging");
    await verifier.verify(revoked.secret, "staging");
    await verifier.verify(expired.secret, "staging");
    await verifier.verify(rotated.secret, "staging");
    await verifier.verify(generateSecret("staging"), "staging");
    await verifier.verify(valid.secret, "production");

    expect(usage.records).toEqual([
      ["staging", valid.token.id, now],
      ["staging", valid.token.id, now + 5],
      ["staging", inGrace.token.id, now + 5],
    ]);
  });
});

describe("the known-hash filter", () => {
  /** Lets the first unknown secret load the environment's filter. */
  async function loaded(verifier: ReturnType<typeof setup>["verifier"], environment = "staging") {
    await verifier.verify(generateSecret(environment), environment);
    await settle();
  }

  it("when the filter is loaded, then a well-formed secret no token has is unknown with no lookup", async () => {
    const { verifier, lookup, issue } = setup({ filter: true });
    issue("staging");
    await loaded(verifier);
    const before = lookup.calls.length;
    for (let i = 0; i < 100; i++) {
      expect(await verifier.verify(generateSecret("staging"), "staging")).toMatchObject({ status: "unknown" });
    }
    expect(lookup.calls.length).toBe(before);
    expect(lookup.hashLoads).toEqual(["staging"]);
  });

  it("when no filter is loaded yet, then an unknown secret is looked up while the filter loads", async () => {
    const { verifier, lookup } = setup({ filter: true });
    const secret = generateSecret("staging");
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "unknown" });
    expect(lookup.lookupsOf(hashSecret(secret))).toBe(1);
    expect(lookup.hashLoads).toEqual(["staging"]);
  });

  it("when a stored token is not cached, then the filter lets it through to its lookup", async () => {
    const { verifier, lookup, issue } = setup({ filter: true });
    const { token, secret } = issue("staging");
    await loaded(verifier);
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "valid" });
    expect(lookup.lookupsOf(token.hash)).toBe(1);
  });

  it("when a token is created after the load, then it passes at once once the replica hears of it", async () => {
    const { verifier, issue } = setup({ filter: true });
    await loaded(verifier);
    const { token, secret } = issue("staging");
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "unknown" });
    verifier.invalidate(token.hash, "staging");
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "valid" });
  });

  it("when a token is announced while the filter loads, then the loaded filter still holds it", async () => {
    const { verifier, lookup, issue } = setup({ filter: true });
    lookup.hashGate = deferred();
    const pending = verifier.verify(generateSecret("staging"), "staging");
    await pending;
    // The load read the tokens before this one was stored; the announcement comes before the load ends.
    const { token, secret } = issue("staging");
    verifier.invalidate(token.hash, "staging");
    lookup.hashGate.resolve();
    await settle();
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "valid" });
  });

  it("when the filter is older than half the cache lifetime, then it is reloaded in the background and still answers", async () => {
    const { verifier, lookup, clock, issue } = setup({ filter: true });
    await loaded(verifier);
    clock.advance(ttlMs / 2 + 1);
    const { secret } = issue("staging");
    // Not announced: the old filter answers unknown, and a reload starts.
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "unknown" });
    await settle();
    expect(lookup.hashLoads).toEqual(["staging", "staging"]);
    clock.advance(negativeTtlMs + 1);
    expect(await verifier.verify(secret, "staging")).toMatchObject({ status: "valid" });
  });

  it("when the filter cannot be reloaded for the cache lifetime, then it is no longer trusted", async () => {
    const { verifier, lookup, clock } = setup({ filter: true });
    await loaded(verifier);
    lookup.failHashes = true;
    clock.advance(ttlMs + 1);
    const secret = generateSecret("staging");
    await verifier.verify(secret, "staging");
    expect(lookup.lookupsOf(hashSecret(secret))).toBe(1);
  });

  it("when a name is not a known environment, then it gets no filter and no load", async () => {
    const { verifier, lookup } = setup({ filter: true, environments: ["production"] });
    for (let i = 0; i < 10; i++) await verifier.verify(generateSecret("staging"), "staging");
    expect(lookup.hashLoads).toEqual([]);
  });

  it("when everything is cleared (pub/sub came back), then the filter is loaded again before it is trusted", async () => {
    const { verifier, lookup } = setup({ filter: true });
    await loaded(verifier);
    verifier.clear();
    const secret = generateSecret("staging");
    await verifier.verify(secret, "staging");
    expect(lookup.lookupsOf(hashSecret(secret))).toBe(1);
    expect(lookup.hashLoads).toEqual(["staging", "staging"]);
  });
});

describe("verifying from memory alone", () => {
  it("when a valid token is cached, then its verdict; otherwise undefined, with no lookup", async () => {
    const { verifier, lookup, issue } = setup();
    const { secret } = issue("staging");
    expect(verifier.verifyFromMemory(secret, "staging")).toBeUndefined();
    expect(lookup.calls).toEqual([]);
    await verifier.verify(secret, "staging");
    expect(verifier.verifyFromMemory(secret, "staging")).toMatchObject({ status: "valid" });
    expect(verifier.verifyFromMemory(secret, "production")).toBeUndefined();
    expect(verifier.verifyFromMemory(generateSecret("staging"), "staging")).toBeUndefined();
  });

  it("when a cached token is revoked, then memory alone does not admit it", async () => {
    const { verifier, lookup, clock, issue } = setup();
    const { token, secret } = issue("staging");
    await verifier.verify(secret, "staging");
    lookup.change(token.hash, { state: "revoked", revokeTime: clock.now() });
    verifier.invalidate(token.hash);
    await verifier.verify(secret, "staging");
    expect(verifier.verifyFromMemory(secret, "staging")).toBeUndefined();
  });
});
