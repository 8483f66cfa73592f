import { describe, expect, it } from "vitest";
import type { IdempotencyRecord, TokenMaintenanceStore } from "../../src/domain/tokens/ports.js";
import { createTokenMaintenance } from "../../src/domain/tokens/token-maintenance.js";
import type { Token } from "../../src/domain/tokens/tokens.js";
import { fakeClock } from "../helpers/fakes.js";

const hour = 3_600_000;
const day = 24 * hour;

/** An in-memory TokenMaintenanceStore with the repository's filters. */
class FakeMaintenanceStore implements TokenMaintenanceStore {
  readonly tokens = new Map<string, Token>();
  readonly keys = new Map<string, IdempotencyRecord>();
  readonly purgeCalls: { environment: string; before: Date }[] = [];
  readonly idempotencyPurgeCalls: { environment: string; before: Date }[] = [];

  async get(_environment: string, id: string): Promise<Token | undefined> {
    const found = this.tokens.get(id);
    return found && structuredClone(found);
  }

  async retire(_environment: string, id: string, now: Date): Promise<boolean> {
    const found = this.tokens.get(id);
    if (!found?.rotateTime || !found.graceExpireTime || found.graceExpireTime > now || found.retireTime) return false;
    this.tokens.set(id, { ...found, retireTime: now, version: found.version + 1 });
    return true;
  }

  async dueForRetirement(_environment: string, now: Date): Promise<Token[]> {
    return [...this.tokens.values()]
      .filter((t) => !t.revokeTime && t.rotateTime && t.graceExpireTime && t.graceExpireTime <= now && !t.retireTime)
      .map((t) => structuredClone(t));
  }

  async markExpired(_environment: string, now: Date): Promise<Token[]> {
    const due = [...this.tokens.values()].filter(
      (t) => t.state === "active" && !t.revokeTime && !t.rotateTime && t.expireTime && t.expireTime <= now,
    );
    for (const t of due) this.tokens.set(t.id, { ...t, state: "expired", version: t.version + 1 });
    return due.map((t) => structuredClone(t));
  }

  async purgeEnded(environment: string, before: Date): Promise<number> {
    this.purgeCalls.push({ environment, before });
    let purged = 0;
    for (const t of [...this.tokens.values()]) {
      const ended =
        (t.revokeTime !== undefined && t.revokeTime < before) ||
        (!t.revokeTime && !t.rotateTime && t.expireTime !== undefined && t.expireTime < before) ||
        (!t.revokeTime && t.retireTime !== undefined && t.graceExpireTime !== undefined && t.graceExpireTime < before);
      if (ended) {
        this.tokens.delete(t.id);
        purged++;
      }
    }
    return purged;
  }

  async purgeIdempotency(environment: string, before: Date): Promise<number> {
    this.idempotencyPurgeCalls.push({ environment, before });
    let purged = 0;
    for (const [key, record] of [...this.keys]) {
      if (record.createTime < before) {
        this.keys.delete(key);
        purged++;
      }
    }
    return purged;
  }

  put(token: Token): void {
    this.tokens.set(token.id, structuredClone(token));
  }

  stored(id: string): Token {
    const found = this.tokens.get(id);
    if (!found) throw new Error(`no token ${id}`);
    return found;
  }

  snapshot(): unknown {
    return structuredClone({ tokens: [...this.tokens], keys: [...this.keys] });
  }
}

function setup(options: { retentionMs?: number } = {}) {
  const store = new FakeMaintenanceStore();
  const clock = fakeClock();
  const published: { environment: string; hash: string }[] = [];
  const retentionAsked: string[] = [];
  const audited: { environment: string; method: string; resource: string }[] = [];
  const maintenance = createTokenMaintenance({
    store,
    invalidations: {
      async publish(environment, hash) {
        published.push({ environment, hash });
        return true;
      },
    },
    async retentionMs(environment) {
      retentionAsked.push(environment);
      return options.retentionMs ?? 30 * day;
    },
    clock,
    audit: {
      async record(environment, { method, resource }) {
        audited.push({ environment, method, resource });
      },
    },
  });
  return { maintenance, store, clock, published, retentionAsked, audited };
}

function record(id: string, overrides: Partial<Token> = {}): Token {
  return {
    id,
    environment: "staging",
    name: id,
    scopes: [],
    hash: `hash-of-${id}`,
    displayPrefix: "rk_staging_abcd…",
    createTime: new Date(Date.UTC(2029, 0, 1)),
    createdBy: "admin",
    state: "active",
    version: 1,
    ...overrides,
  };
}

describe("retire", () => {
  it("when the grace has not ended, then it returns when to retry and changes nothing", async () => {
    const { maintenance, store, clock, published } = setup();
    const graceExpireTime = new Date(clock.now().getTime() + hour);
    store.put(record("tok_old", { rotateTime: clock.now(), graceExpireTime, state: "rotated" }));
    const before = store.snapshot();

    expect(await maintenance.retire("staging", "tok_old")).toEqual({ retryAt: graceExpireTime });
    expect(store.snapshot()).toEqual(before);
    expect(published).toEqual([]);
  });

  it("when the grace has ended, then the token is retired and published once; a second run publishes nothing", async () => {
    const { maintenance, store, clock, published } = setup();
    const graceExpireTime = new Date(clock.now().getTime() + hour);
    store.put(record("tok_old", { rotateTime: clock.now(), graceExpireTime, state: "rotated" }));
    clock.advance(hour);
    const retiredAt = clock.now();

    expect(await maintenance.retire("staging", "tok_old")).toEqual({});
    expect(store.stored("tok_old").retireTime).toEqual(retiredAt);
    expect(published).toEqual([{ environment: "staging", hash: "hash-of-tok_old" }]);

    clock.advance(hour);
    const before = store.snapshot();
    expect(await maintenance.retire("staging", "tok_old")).toEqual({});
    expect(store.snapshot()).toEqual(before);
    expect(published).toHaveLength(1);
  });

  it("when the token is missing or was never rotated, then nothing happens", async () => {
    const { maintenance, store, published } = setup();
    store.put(record("tok_active"));
    const before = store.snapshot();

    expect(await maintenance.retire("staging", "tok_missing")).toEqual({});
    expect(await maintenance.retire("staging", "tok_active")).toEqual({});
    expect(store.snapshot()).toEqual(before);
    expect(published).toEqual([]);
  });
});

describe("sweep", () => {
  function seed(store: FakeMaintenanceStore, now: number): void {
    const at = (offset: number) => new Date(now + offset);
    store.put(record("tok_live"));
    store.put(record("tok_expiring", { expireTime: at(hour) }));
    store.put(record("tok_just_expired", { expireTime: at(-hour) }));
    store.put(record("tok_expired_long_ago", { expireTime: at(-40 * day), state: "expired" }));
    store.put(record("tok_in_grace", { rotateTime: at(-hour), graceExpireTime: at(hour), state: "rotated" }));
    store.put(record("tok_grace_over", { rotateTime: at(-2 * hour), graceExpireTime: at(-hour), state: "rotated" }));
    store.put(
      record("tok_retired_long_ago", {
        rotateTime: at(-41 * day),
        graceExpireTime: at(-40 * day),
        retireTime: at(-40 * day),
        state: "rotated",
      }),
    );
    store.put(record("tok_revoked_recently", { revokeTime: at(-10 * day), state: "revoked" }));
    store.put(record("tok_revoked_long_ago", { revokeTime: at(-40 * day), state: "revoked" }));
    store.keys.set("create-token:old", { tokenId: "tok_a", fingerprint: "f", createTime: at(-day - 1) });
    store.keys.set("create-token:recent", { tokenId: "tok_b", fingerprint: "f", createTime: at(-day + hour) });
  }

  it("when tokens are due, then expired ones are marked and published, due rotated ones retired, old ones purged", async () => {
    const { maintenance, store, clock, published, retentionAsked } = setup({ retentionMs: 30 * day });
    const now = clock.now().getTime();
    seed(store, now);

    const result = await maintenance.sweep("staging");

    expect(result).toEqual({ expired: 1, retired: 1, purged: 3 });
    expect(store.stored("tok_just_expired").state).toBe("expired");
    expect(store.stored("tok_expiring").state).toBe("active");
    expect(store.stored("tok_grace_over").retireTime).toEqual(clock.now());
    expect(store.stored("tok_in_grace").retireTime).toBeUndefined();
    expect(published).toEqual([
      { environment: "staging", hash: "hash-of-tok_just_expired" },
      { environment: "staging", hash: "hash-of-tok_grace_over" },
    ]);
    expect(retentionAsked).toEqual(["staging"]);
    expect(store.purgeCalls).toEqual([{ environment: "staging", before: new Date(now - 30 * day) }]);
    expect([...store.tokens.keys()].sort()).toEqual([
      "tok_expiring",
      "tok_grace_over",
      "tok_in_grace",
      "tok_just_expired",
      "tok_live",
      "tok_revoked_recently",
    ]);
    expect(store.idempotencyPurgeCalls).toEqual([{ environment: "staging", before: new Date(now - day) }]);
    expect([...store.keys.keys()]).toEqual(["create-token:recent"]);
  });

  it("when the environment keeps ended tokens for less time, then more of them are purged", async () => {
    const { maintenance, store, clock } = setup({ retentionMs: 7 * day });
    const now = clock.now().getTime();
    seed(store, now);

    const result = await maintenance.sweep("staging");

    expect(result.purged).toBe(4);
    expect(store.purgeCalls).toEqual([{ environment: "staging", before: new Date(now - 7 * day) }]);
    expect(store.tokens.has("tok_revoked_recently")).toBe(false);
  });

  it("when the sweep runs twice, then the second run changes and publishes nothing", async () => {
    const { maintenance, store, clock, published } = setup();
    seed(store, clock.now().getTime());
    await maintenance.sweep("staging");
    const after = store.snapshot();
    const publishedAfter = published.length;

    const second = await maintenance.sweep("staging");

    expect(second).toEqual({ expired: 0, retired: 0, purged: 0 });
    expect(store.snapshot()).toEqual(after);
    expect(published).toHaveLength(publishedAfter);
  });
});

describe("the audit log of retirements", () => {
  it("when a token is retired by its job or by the sweep, then each retirement is recorded once; a second run records nothing", async () => {
    const { maintenance, store, clock, audited } = setup();
    const graceExpireTime = new Date(clock.now().getTime() + hour);
    store.put(record("tok_a", { rotateTime: clock.now(), graceExpireTime, state: "rotated" }));
    store.put(record("tok_b", { rotateTime: clock.now(), graceExpireTime, state: "rotated" }));
    clock.advance(hour);
    await maintenance.retire("staging", "tok_a");
    await maintenance.retire("staging", "tok_a");
    await maintenance.sweep("staging");
    await maintenance.sweep("staging");
    expect(audited).toEqual([
      { environment: "staging", method: "worker/token.retire", resource: "tok_a" },
      { environment: "staging", method: "worker/token.retire", resource: "tok_b" },
    ]);
  });
});
