import { describe, expect, it } from "vitest";
import type { WrappedDataKey } from "../../src/domain/crypto/envelope.js";
import { createEnvironmentService } from "../../src/domain/environments/environment-service.js";
import type { Environment, EnvironmentEvent } from "../../src/domain/environments/environments.js";
import type { EnvironmentResources, EnvironmentStore } from "../../src/domain/environments/ports.js";
import {
  AlreadyExistsError,
  ConcurrentModificationError,
  FailedPreconditionError,
  NotFoundError,
  RoomkeyError,
} from "../../src/domain/errors.js";
import type { PageRequest } from "../../src/domain/paging.js";
import { asRoomkeyError, fakeClock, rejectionOf } from "../helpers/fakes.js";

/** Yields to other pending calls, so concurrent callers really interleave. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

class FakeEnvironmentStore implements EnvironmentStore {
  readonly records = new Map<string, Environment>();
  inserts = 0;
  replaces = 0;
  /** Runs before a replace compares versions; a test uses it to play a concurrent writer. */
  beforeReplace: ((attempt: number) => void) | undefined;

  async insert(environment: Environment): Promise<boolean> {
    await tick();
    if (this.records.has(environment.name)) return false;
    this.inserts++;
    this.records.set(environment.name, structuredClone(environment));
    return true;
  }

  async get(name: string): Promise<Environment | undefined> {
    await tick();
    const found = this.records.get(name);
    return found && structuredClone(found);
  }

  async list(page: PageRequest): Promise<Environment[]> {
    await tick();
    return [...this.records.values()]
      .filter((env) => page.after === undefined || env.name > page.after)
      .sort((a, b) => a.name.localeCompare(b.name))
      .slice(0, page.size + 1)
      .map((env) => structuredClone(env));
  }

  async replace(environment: Environment, expectedVersion: number): Promise<boolean> {
    await tick();
    this.replaces++;
    this.beforeReplace?.(this.replaces);
    const stored = this.records.get(environment.name);
    if (!stored || stored.version !== expectedVersion) return false;
    this.records.set(environment.name, structuredClone(environment));
    return true;
  }

  async remove(name: string): Promise<void> {
    await tick();
    this.records.delete(name);
  }

  bootstrappedAt: Date | undefined;

  async isBootstrapped(): Promise<boolean> {
    await tick();
    return this.bootstrappedAt !== undefined;
  }

  async markBootstrapped(at: Date): Promise<void> {
    await tick();
    this.bootstrappedAt ??= at;
  }

  put(environment: Environment): void {
    this.records.set(environment.name, structuredClone(environment));
  }

  stored(name: string): Environment {
    const found = this.records.get(name);
    if (!found) throw new Error(`no record ${name}`);
    return found;
  }
}

class FakeResources implements EnvironmentResources {
  readonly calls: string[] = [];
  failDropOnce = false;
  queuesReachable = true;

  assertQueuesReachable(): void {
    if (!this.queuesReachable) throw new RoomkeyError("unavailable", "BACKEND_UNAVAILABLE", "Redis is unavailable");
  }

  async provision(name: string): Promise<void> {
    await tick();
    this.calls.push(`provision:${name}`);
  }

  async dropDatabase(name: string): Promise<void> {
    await tick();
    if (this.failDropOnce) {
      this.failDropOnce = false;
      throw new Error("MongoDB went away");
    }
    this.calls.push(`dropDatabase:${name}`);
  }

  async removeQueues(name: string): Promise<void> {
    await tick();
    this.calls.push(`removeQueues:${name}`);
  }
}

function setup(options: { activeAccounts?: number[]; staleCreateMs?: number } = {}) {
  const store = new FakeEnvironmentStore();
  const resources = new FakeResources();
  const events: EnvironmentEvent[] = [];
  const clock = fakeClock();
  const counts = [...(options.activeAccounts ?? [0])];
  const countCalls: string[] = [];
  let keyCount = 0;
  const service = createEnvironmentService({
    store,
    resources,
    accounts: {
      async countActive(environment) {
        countCalls.push(environment);
        return counts.length > 1 ? (counts.shift() ?? 0) : (counts[0] ?? 0);
      },
    },
    keyring: {
      createDataKey(environment) {
        keyCount++;
        const wrapped: WrappedDataKey = { wrapped: `wrapped-${environment}-${keyCount}`, masterKeyId: "test-master" };
        return { key: Buffer.alloc(32, keyCount), wrapped };
      },
      current: { id: "test", fingerprint: "test-master", current: true },
    },
    events: {
      async publish(event) {
        events.push(event);
      },
    },
    clock,
    ...(options.staleCreateMs === undefined ? {} : { staleCreateMs: options.staleCreateMs }),
  });
  return { service, store, resources, events, clock, countCalls };
}

function record(overrides: Partial<Environment> & { name: string }): Environment {
  const time = new Date(Date.UTC(2029, 11, 31));
  return {
    displayName: "",
    description: "",
    settings: {},
    builtIn: false,
    state: "active",
    dataKey: { wrapped: `stored-${overrides.name}`, masterKeyId: "test-master" },
    createTime: time,
    updateTime: time,
    version: 1,
    ...overrides,
  };
}

describe("create", () => {
  it("when a new environment is created, then its record ends active and provisioned, with a created event", async () => {
    const { service, store, resources, events } = setup();

    const created = await service.create("env-a", { displayName: "Env A", settings: { tokenRetentionMs: 5 } });

    expect(created).toMatchObject({ name: "env-a", displayName: "Env A", state: "active", builtIn: false });
    expect(created.settings).toEqual({ tokenRetentionMs: 5 });
    expect(store.stored("env-a")).toMatchObject({ state: "active", version: created.version });
    expect(created.dataKey).toEqual({ wrapped: expect.stringMatching(/^wrapped-env-a-/), masterKeyId: "test-master" });
    // A database left without a record (a stale replica's write) is dropped before provisioning.
    expect(resources.calls).toEqual(["dropDatabase:env-a", "provision:env-a"]);
    expect(events).toEqual([{ type: "created", name: "env-a" }]);
  });

  it("when an active environment of that name exists, then AlreadyExistsError ENVIRONMENT_EXISTS and nothing changes", async () => {
    const { service, store, resources, events } = setup();
    const existing = record({ name: "env-a", displayName: "kept" });
    store.put(existing);

    const error = await rejectionOf(service.create("env-a", { displayName: "other" }));

    expect(error).toBeInstanceOf(AlreadyExistsError);
    expect(asRoomkeyError(error)).toMatchObject({
      kind: "already_exists",
      reason: "ENVIRONMENT_EXISTS",
      metadata: { environment: "env-a" },
    });
    expect(store.stored("env-a")).toEqual(existing);
    expect(resources.calls).toEqual([]);
    expect(events).toEqual([]);
  });

  it("when the same name is created twice in a row, then the second call fails with ENVIRONMENT_EXISTS", async () => {
    const { service } = setup();
    await service.create("env-a", {});
    const error = asRoomkeyError(await rejectionOf(service.create("env-a", {})));
    expect(error.reason).toBe("ENVIRONMENT_EXISTS");
  });

  it("when a recent creating record exists, then it is not taken over and ENVIRONMENT_EXISTS is thrown", async () => {
    const { service, store, resources, clock } = setup({ staleCreateMs: 60_000 });
    store.put(record({ name: "env-a", state: "creating", updateTime: clock.now() }));
    clock.advance(60_000);

    const error = asRoomkeyError(await rejectionOf(service.create("env-a", {})));

    expect(error.reason).toBe("ENVIRONMENT_EXISTS");
    expect(error.message).toContain("being created");
    expect(store.stored("env-a").state).toBe("creating");
    expect(resources.calls).toEqual([]);
  });

  it("when a creating record is older than staleCreateMs, then it is taken over and finished", async () => {
    const { service, store, resources, events, clock } = setup({ staleCreateMs: 60_000 });
    const abandoned = record({ name: "env-a", state: "creating", updateTime: clock.now(), version: 1 });
    store.put(abandoned);
    clock.advance(60_001);

    const created = await service.create("env-a", { displayName: "ignored" });

    expect(created.state).toBe("active");
    expect(created.dataKey).toEqual(abandoned.dataKey);
    expect(store.stored("env-a")).toMatchObject({ state: "active", version: 2, dataKey: abandoned.dataKey });
    expect(resources.calls).toEqual(["provision:env-a"]);
    expect(events).toEqual([{ type: "created", name: "env-a" }]);
  });

  it("when an abandoned creating record's data key is under another master key, then it is finished with a new data key under the current one", async () => {
    const { service, store, clock } = setup({ staleCreateMs: 60_000 });
    const oldKey = { wrapped: "wrapped-under-a-removed-key", masterKeyId: "old-master" };
    store.put(record({ name: "env-a", state: "creating", updateTime: clock.now(), version: 1, dataKey: oldKey }));
    clock.advance(60_001);

    const created = await service.create("env-a", {});

    expect(created.dataKey).toEqual({ wrapped: expect.stringMatching(/^wrapped-env-a-/), masterKeyId: "test-master" });
    expect(store.stored("env-a")).toMatchObject({ state: "active", dataKey: created.dataKey });
  });

  it("when the record of that name is being deleted, then create fails with ENVIRONMENT_BUSY", async () => {
    const { service, store } = setup();
    store.put(record({ name: "env-a", state: "deleting" }));
    const error = asRoomkeyError(await rejectionOf(service.create("env-a", {})));
    expect(error).toMatchObject({ kind: "unavailable", reason: "ENVIRONMENT_BUSY" });
  });
});

describe("bootstrap", () => {
  it("when a deployment starts for the first time, then the defaults are created and the deployment is marked", async () => {
    const { service, store } = setup();
    await service.bootstrap(["development", "staging"]);
    expect([...store.records.keys()].sort()).toEqual(["development", "staging"]);
    expect(store.bootstrappedAt).toBeDefined();
  });

  it("when a default was deleted after the first start, then a restart does not bring it back", async () => {
    const { service, store } = setup();
    await service.bootstrap(["development", "staging"]);
    await service.remove("staging", true);
    await service.bootstrap(["development", "staging"]);
    expect([...store.records.keys()]).toEqual(["development"]);
  });

  it("when a default is being deleted during a first start, then bootstrap leaves it alone and finishes", async () => {
    const { service, store, resources } = setup();
    await service.ensure("staging");
    store.put({ ...store.stored("staging"), state: "deleting" });
    resources.calls.length = 0;
    await service.bootstrap(["staging", "production"]);
    expect(store.stored("staging").state).toBe("deleting");
    expect(store.stored("production").state).toBe("active");
    expect(resources.calls).not.toContain("provision:staging");
  });
});

describe("ensure", () => {
  it("when several replicas ensure the same environment at once, then one record is written and all get it active", async () => {
    const { service, store, events } = setup();

    const results = await Promise.all([1, 2, 3, 4, 5].map(() => service.ensure("default")));

    expect(store.inserts).toBe(1);
    expect(store.records.size).toBe(1);
    expect(store.stored("default")).toMatchObject({ state: "active", builtIn: true });
    for (const result of results) {
      expect(result?.state).toBe("active");
      expect(result?.dataKey).toEqual(store.stored("default").dataKey);
    }
    expect(events.filter((e) => e.type === "created")).toEqual([{ type: "created", name: "default" }]);
  });

  it("when the environment is already active, then ensure returns it without provisioning", async () => {
    const { service, store, resources, events } = setup();
    const existing = record({ name: "default", builtIn: true });
    store.put(existing);

    expect(await service.ensure("default")).toEqual(existing);
    expect(resources.calls).toEqual([]);
    expect(events).toEqual([]);
  });
});

describe("update", () => {
  it("when settings are updated, then they are merged into the stored ones and the version goes up", async () => {
    const { service, store, events } = setup();
    store.put(
      record({
        name: "env-a",
        displayName: "Old",
        description: "kept",
        settings: { oauthRefreshMarginMs: 1_000, tokenRetentionMs: 2_000 },
        version: 4,
      }),
    );

    const updated = await service.update("env-a", { displayName: "New", settings: { tokenRetentionMs: 3_000 } });

    expect(updated).toMatchObject({ displayName: "New", description: "kept", version: 5 });
    expect(updated.settings).toEqual({ oauthRefreshMarginMs: 1_000, tokenRetentionMs: 3_000 });
    expect(store.stored("env-a")).toEqual(updated);
    expect(events).toEqual([{ type: "updated", name: "env-a" }]);
  });

  it("when another writer changes the record first, then update re-reads, merges both and retries", async () => {
    const { service, store } = setup();
    store.put(record({ name: "env-a", displayName: "Old", settings: { tokenRetentionMs: 1 }, version: 1 }));
    store.beforeReplace = (attempt) => {
      if (attempt !== 1) return;
      const current = store.stored("env-a");
      store.put({ ...current, description: "from the other writer", version: current.version + 1 });
    };

    const updated = await service.update("env-a", { settings: { oauthRefreshMarginMs: 7 } });

    expect(store.replaces).toBe(2);
    expect(updated).toMatchObject({ description: "from the other writer", version: 3 });
    expect(updated.settings).toEqual({ tokenRetentionMs: 1, oauthRefreshMarginMs: 7 });
    expect(store.stored("env-a")).toEqual(updated);
  });

  it("when every write loses to another writer, then ConcurrentModificationError after a bounded number of tries", async () => {
    const { service, store, events } = setup();
    store.put(record({ name: "env-a" }));
    store.beforeReplace = () => {
      const current = store.stored("env-a");
      store.put({ ...current, version: current.version + 1 });
    };

    const error = await rejectionOf(service.update("env-a", { displayName: "x" }));

    expect(error).toBeInstanceOf(ConcurrentModificationError);
    expect(store.replaces).toBe(5);
    expect(events).toEqual([]);
  });

  it("when the environment is still being created, then update reports it not found", async () => {
    const { service, store } = setup();
    store.put(record({ name: "env-a", state: "creating" }));
    expect(await rejectionOf(service.update("env-a", {}))).toBeInstanceOf(NotFoundError);
  });
});

describe("remove", () => {
  it("when the environment has active accounts and force is off, then ENVIRONMENT_HAS_ACTIVE_ACCOUNTS and nothing is touched", async () => {
    const { service, store, resources, events } = setup({ activeAccounts: [2] });
    const existing = record({ name: "env-a" });
    store.put(existing);

    const error = await rejectionOf(service.remove("env-a", false));

    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect(asRoomkeyError(error)).toMatchObject({
      kind: "failed_precondition",
      reason: "ENVIRONMENT_HAS_ACTIVE_ACCOUNTS",
      metadata: { environment: "env-a", active_accounts: "2" },
    });
    expect(store.stored("env-a")).toEqual(existing);
    expect(resources.calls).toEqual([]);
    expect(events).toEqual([]);
  });

  it("when the environment has active accounts and force is on, then it is removed with its queues and database", async () => {
    const { service, store, resources, events } = setup({ activeAccounts: [2] });
    store.put(record({ name: "env-a" }));

    await service.remove("env-a", true);

    expect(store.records.has("env-a")).toBe(false);
    expect(resources.calls).toEqual(["removeQueues:env-a", "dropDatabase:env-a"]);
    expect(events).toEqual([
      { type: "deleting", name: "env-a" },
      { type: "deleted", name: "env-a" },
    ]);
  });

  it("when there are no active accounts, then it is removed after counting twice", async () => {
    const { service, store, resources, countCalls } = setup({ activeAccounts: [0] });
    store.put(record({ name: "env-a" }));

    await service.remove("env-a", false);

    expect(countCalls).toEqual(["env-a", "env-a"]);
    expect(store.records.has("env-a")).toBe(false);
    expect(resources.calls).toEqual(["removeQueues:env-a", "dropDatabase:env-a"]);
  });

  it("when an account appears between the count and the mark, then the record rolls back to active", async () => {
    const { service, store, resources, events } = setup({ activeAccounts: [0, 1] });
    store.put(record({ name: "env-a", version: 3 }));

    const error = asRoomkeyError(await rejectionOf(service.remove("env-a", false)));

    expect(error.reason).toBe("ENVIRONMENT_HAS_ACTIVE_ACCOUNTS");
    expect(error.metadata).toMatchObject({ active_accounts: "1" });
    expect(store.stored("env-a").state).toBe("active");
    expect(resources.calls).toEqual([]);
    expect(events).toEqual([
      { type: "deleting", name: "env-a" },
      { type: "updated", name: "env-a" },
    ]);
  });

  it("when a delete was interrupted, then running it again finishes it", async () => {
    const { service, store, resources, events } = setup();
    store.put(record({ name: "env-a" }));
    resources.failDropOnce = true;

    await expect(service.remove("env-a", false)).rejects.toThrow("MongoDB went away");
    expect(store.stored("env-a").state).toBe("deleting");
    expect(events).toEqual([{ type: "deleting", name: "env-a" }]);

    await service.remove("env-a", false);

    expect(store.records.has("env-a")).toBe(false);
    expect(resources.calls).toEqual(["removeQueues:env-a", "removeQueues:env-a", "dropDatabase:env-a"]);
    expect(events).toEqual([
      { type: "deleting", name: "env-a" },
      { type: "deleted", name: "env-a" },
    ]);
  });

  it("when Redis is unreachable, then remove fails UNAVAILABLE before touching anything", async () => {
    const { service, store, resources, events } = setup();
    store.put(record({ name: "env-a" }));
    resources.queuesReachable = false;

    const error = asRoomkeyError(await rejectionOf(service.remove("env-a", true)));

    expect(error).toBeInstanceOf(RoomkeyError);
    expect(error.kind).toBe("unavailable");
    expect(store.stored("env-a").state).toBe("active");
    expect(resources.calls).toEqual([]);
    expect(events).toEqual([]);
  });

  it("when a delete was abandoned long enough ago, then finishAbandonedDeletes finishes it and leaves recent ones", async () => {
    const { service, store, resources, clock } = setup();
    store.put(record({ name: "old", state: "deleting", updateTime: clock.now() }));
    clock.advance(120_000);
    store.put(record({ name: "recent", state: "deleting", updateTime: clock.now() }));
    store.put(record({ name: "alive", state: "active", updateTime: new Date(0) }));

    const finished = await service.finishAbandonedDeletes([...store.records.values()], 60_000);

    expect(finished).toEqual(["old"]);
    expect([...store.records.keys()].sort()).toEqual(["alive", "recent"]);
    expect(resources.calls).toEqual(["removeQueues:old", "dropDatabase:old"]);
  });

  it("when the record is already deleting, then remove resumes without counting accounts", async () => {
    const { service, store, resources, events, countCalls } = setup({ activeAccounts: [3] });
    store.put(record({ name: "env-a", state: "deleting" }));

    await service.remove("env-a", false);

    expect(countCalls).toEqual([]);
    expect(store.records.has("env-a")).toBe(false);
    expect(resources.calls).toEqual(["removeQueues:env-a", "dropDatabase:env-a"]);
    expect(events).toEqual([{ type: "deleted", name: "env-a" }]);
  });

  it("when the environment does not exist, then ENVIRONMENT_NOT_FOUND", async () => {
    const { service, resources } = setup();
    const error = await rejectionOf(service.remove("env-a", true));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(asRoomkeyError(error).reason).toBe("ENVIRONMENT_NOT_FOUND");
    expect(resources.calls).toEqual([]);
  });
});

describe("get and list", () => {
  it("when a deleting environment is read, then ENVIRONMENT_BUSY", async () => {
    const { service, store } = setup();
    store.put(record({ name: "env-a", state: "deleting" }));
    expect(asRoomkeyError(await rejectionOf(service.get("env-a"))).reason).toBe("ENVIRONMENT_BUSY");
  });

  it("when more records exist than the page size, then a page and the key to continue after come back", async () => {
    const { service, store } = setup();
    for (const name of ["env-c", "env-a", "env-b"]) store.put(record({ name }));

    const page = await service.list({ after: undefined, size: 2 });

    expect(page.items.map((e) => e.name)).toEqual(["env-a", "env-b"]);
    expect(page.nextAfter).toBe("env-b");
    const rest = await service.list({ after: "env-b", size: 2 });
    expect(rest.items.map((e) => e.name)).toEqual(["env-c"]);
    expect(rest.nextAfter).toBeUndefined();
  });
});
