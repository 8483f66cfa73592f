import { describe, expect, it } from "vitest";
import type { WrappedDataKey } from "../../src/domain/crypto/envelope.js";
import { createEnvironmentDirectory } from "../../src/domain/environments/environment-directory.js";
import {
  type Environment,
  EnvironmentReplacedError,
  incarnationOf,
} from "../../src/domain/environments/environments.js";
import type { EnvironmentSource } from "../../src/domain/environments/ports.js";
import { NotFoundError } from "../../src/domain/errors.js";
import { type Deferred, deferred, environmentRecord, fakeClock, rejectionOf, settle } from "../helpers/fakes.js";

class FakeSource implements EnvironmentSource {
  readonly records = new Map<string, Environment>();
  readonly gets: string[] = [];
  listCalls = 0;
  /** When set, `get` waits for the test to release it. */
  gate: Deferred<void> | undefined;

  async get(name: string): Promise<Environment | undefined> {
    this.gets.push(name);
    if (this.gate) await this.gate.promise;
    return this.records.get(name);
  }

  async listActive(): Promise<Environment[]> {
    this.listCalls++;
    return [...this.records.values()].filter((env) => env.state === "active");
  }

  put(env: Environment): void {
    this.records.set(env.name, env);
  }
}

function setup(missTtlMs = 1_000, options: { listTrustMs?: number } = {}) {
  const source = new FakeSource();
  const clock = fakeClock();
  const unwrapped: string[] = [];
  const gone: string[] = [];
  const directory = createEnvironmentDirectory({
    source,
    clock,
    missTtlMs,
    ...options,
    onGone: (name) => gone.push(name),
    keyring: {
      unwrap(environment: string, wrapped: WrappedDataKey) {
        unwrapped.push(`${environment}:${wrapped.wrapped}`);
        return Buffer.from(`key-of-${wrapped.wrapped}`);
      },
    },
  });
  return { directory, source, clock, unwrapped, gone };
}

describe("find", () => {
  it("when many callers look up an unknown name at once, then the source is asked once", async () => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a"));
    source.gate = deferred<void>();

    const finds = [1, 2, 3, 4, 5].map(() => directory.find("env-a"));
    await settle();
    source.gate.resolve();
    const results = await Promise.all(finds);

    expect(source.gets).toEqual(["env-a"]);
    for (const result of results) expect(result?.name).toBe("env-a");
  });

  it("when a name was found once, then later finds do not ask the source again", async () => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a"));

    await directory.find("env-a");
    await directory.find("env-a");

    expect(source.gets).toEqual(["env-a"]);
    expect(directory.names()).toEqual(["env-a"]);
  });

  it("when a name is unknown, then the miss is remembered for missTtlMs and then looked up again", async () => {
    const { directory, source, clock } = setup(1_000);

    expect(await directory.find("env-a")).toBeUndefined();
    source.put(environmentRecord("env-a"));
    clock.advance(999);
    expect(await directory.find("env-a")).toBeUndefined();
    expect(source.gets).toEqual(["env-a"]);

    clock.advance(1);
    expect((await directory.find("env-a"))?.name).toBe("env-a");
    expect(source.gets).toEqual(["env-a", "env-a"]);
  });

  it.each(["creating", "deleting"] as const)("when the record is %s, then find returns undefined", async (state) => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a", { state }));

    expect(await directory.find("env-a")).toBeUndefined();
    expect(directory.names()).toEqual([]);
  });

  it("when require is asked for an unknown name, then ENVIRONMENT_NOT_FOUND", async () => {
    const { directory } = setup();
    const error = await rejectionOf(Promise.resolve().then(() => directory.require("env-a")));
    expect(error).toBeInstanceOf(NotFoundError);
  });
});

describe("apply", () => {
  it("when a created event arrives for a remembered miss, then the next find sees the environment at once", async () => {
    const { directory, source } = setup(60_000);
    expect(await directory.find("env-a")).toBeUndefined();
    source.put(environmentRecord("env-a"));

    await directory.apply({ type: "created", name: "env-a" });

    expect((await directory.find("env-a"))?.name).toBe("env-a");
    expect(directory.names()).toEqual(["env-a"]);
  });

  it("when a deleted event arrives, then the environment is evicted and not reloaded within missTtlMs", async () => {
    const { directory, source } = setup(60_000);
    source.put(environmentRecord("env-a"));
    await directory.find("env-a");

    await directory.apply({ type: "deleted", name: "env-a" });

    expect(directory.names()).toEqual([]);
    expect(await directory.find("env-a")).toBeUndefined();
    expect(source.gets).toEqual(["env-a"]);
  });

  it("when a deleting event arrives, then the environment is no longer served", async () => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a"));
    await directory.find("env-a");

    await directory.apply({ type: "deleting", name: "env-a" });

    expect(await directory.find("env-a")).toBeUndefined();
  });

  it("when an updated event arrives, then the new record replaces the cached one", async () => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a", { displayName: "Old" }));
    await directory.find("env-a");
    source.put(environmentRecord("env-a", { displayName: "New", version: 2 }));

    await directory.apply({ type: "updated", name: "env-a" });

    expect((await directory.find("env-a"))?.displayName).toBe("New");
  });
});

describe("refresh", () => {
  it("when refreshed, then the served set becomes exactly the active records", async () => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a"));
    await directory.find("env-a");
    source.records.clear();
    source.put(environmentRecord("env-b"));
    source.put(environmentRecord("env-c"));
    source.put(environmentRecord("env-d", { state: "deleting" }));

    await directory.refresh();

    expect(directory.names().sort()).toEqual(["env-b", "env-c"]);
    expect((await directory.find("env-b"))?.name).toBe("env-b");
    expect(source.gets).toEqual(["env-a"]);
  });

  it("when an event arrives while a refresh is in flight, then the older refresh result is dropped", async () => {
    const { directory, source } = setup();
    source.put(environmentRecord("env-a"));
    const refreshing = directory.refresh();
    await directory.apply({ type: "deleted", name: "env-a" });
    await refreshing;

    expect(directory.names()).toEqual([]);
  });
});

describe("dataKey", () => {
  it("when the data key is asked for repeatedly, then it is unwrapped once", async () => {
    const { directory, source, unwrapped } = setup();
    source.put(environmentRecord("env-a"));

    const first = await directory.dataKey("env-a");
    const second = await directory.dataKey("env-a");
    const third = await directory.dataKey("env-a");

    expect(first.toString()).toBe("key-of-wrapped-env-a-1");
    expect(second.equals(first)).toBe(true);
    expect(third.equals(first)).toBe(true);
    expect(unwrapped).toEqual(["env-a:wrapped-env-a-1"]);
  });

  it("when the wrapped key changes, then the new one is unwrapped", async () => {
    const { directory, source, unwrapped } = setup();
    source.put(environmentRecord("env-a"));
    await directory.dataKey("env-a");
    source.put(
      environmentRecord("env-a", { version: 2, dataKey: { wrapped: "wrapped-env-a-2", masterKeyId: "test-master" } }),
    );
    await directory.apply({ type: "updated", name: "env-a" });

    const key = await directory.dataKey("env-a");

    expect(key.toString()).toBe("key-of-wrapped-env-a-2");
    expect(unwrapped).toEqual(["env-a:wrapped-env-a-1", "env-a:wrapped-env-a-2"]);
  });

  it("when the environment is unknown, then dataKey fails with not found and unwraps nothing", async () => {
    const { directory, unwrapped } = setup();
    expect(await rejectionOf(directory.dataKey("env-a"))).toBeInstanceOf(NotFoundError);
    expect(unwrapped).toEqual([]);
  });
});

describe("dataKey of one incarnation", () => {
  const first = environmentRecord("env-a");
  const second = environmentRecord("env-a", {
    createTime: new Date(first.createTime.getTime() + 60_000),
    dataKey: { wrapped: "wrapped-env-a-second", masterKeyId: "test-master" },
  });

  it("when the job's incarnation is the one known, then its key comes without asking the records", async () => {
    const { directory, source } = setup();
    source.put(first);
    await directory.find("env-a");

    const key = await directory.dataKey("env-a", incarnationOf(first));

    expect(key.toString()).toBe("key-of-wrapped-env-a-1");
    expect(source.gets).toEqual(["env-a"]);
  });

  it("when the name was created again, then a job of the old incarnation never gets the new key", async () => {
    const { directory, source, unwrapped } = setup();
    source.put(second);
    await directory.find("env-a");

    const error = await rejectionOf(directory.dataKey("env-a", incarnationOf(first)));

    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(unwrapped).toEqual([]);
  });

  it("when this process has not heard of the re-creation yet, then the records settle it: the new job gets the new key", async () => {
    const { directory, source } = setup();
    source.put(first);
    await directory.find("env-a");
    source.put(second);

    const key = await directory.dataKey("env-a", incarnationOf(second));

    expect(key.toString()).toBe("key-of-wrapped-env-a-second");
    expect(directory.names()).toEqual(["env-a"]);
    expect(await directory.dataKey("env-a")).toEqual(key);
  });

  it("when a job names an incarnation this process does not hold, then the records settle it: none, no key", async () => {
    const { directory, source, unwrapped } = setup();
    source.put(first);
    await directory.find("env-a");
    source.records.delete("env-a");

    // (A job of the incarnation held in memory gets that incarnation's own key: harmless, as its writes are refused.)
    const error = await rejectionOf(directory.dataKey("env-a", incarnationOf(second)));

    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(unwrapped).toEqual([]);
  });

  it("when the environment was deleted and this process knows it, then a job of it gets no key", async () => {
    const { directory, source } = setup();
    source.put(first);
    await directory.find("env-a");
    source.records.delete("env-a");
    await directory.apply({ type: "deleted", name: "env-a" });

    expect(await rejectionOf(directory.dataKey("env-a", incarnationOf(first)))).toBeInstanceOf(
      EnvironmentReplacedError,
    );
  });
});

describe("names a caller makes up", () => {
  it("when the full list is fresh, then a name not in it is no environment without asking the source", async () => {
    const { directory, source, clock } = setup(1_000, { listTrustMs: 4_000 });
    source.put(environmentRecord("env-a"));
    await directory.refresh();
    for (let i = 0; i < 100; i++) expect(await directory.find(`made-up-${i}`)).toBeUndefined();
    expect(source.gets).toEqual([]);
    await expect(directory.require("made-up-0")).rejects.toBeInstanceOf(NotFoundError);
    // Past the trust, and without a refresh, the source is asked again.
    clock.advance(4_001);
    await directory.find("made-up-0");
    expect(source.gets).toEqual(["made-up-0"]);
  });

  it("when an environment is announced after the list was read, then it is found at once", async () => {
    const { directory, source } = setup(1_000, { listTrustMs: 4_000 });
    await directory.refresh();
    source.put(environmentRecord("env-new"));
    await directory.apply({ type: "created", name: "env-new" });
    expect((await directory.find("env-new"))?.name).toBe("env-new");
  });

  it("when two environments are announced at once, then both are found at once (one's event does not void the other's load)", async () => {
    const { directory, source } = setup(1_000, { listTrustMs: 4_000 });
    await directory.refresh();
    source.put(environmentRecord("env-one"));
    source.put(environmentRecord("env-two"));
    source.gate = deferred();
    const first = directory.apply({ type: "created", name: "env-one" });
    const second = directory.apply({ type: "updated", name: "env-two" });
    source.gate.resolve();
    await Promise.all([first, second]);
    source.gate = undefined;
    expect(directory.has("env-one")).toBe(true);
    expect((await directory.find("env-one"))?.name).toBe("env-one");
    expect((await directory.find("env-two"))?.name).toBe("env-two");
  });

  it("when no list was read yet, then unknown names are asked (and remembered for a second)", async () => {
    const { directory, source } = setup(1_000, { listTrustMs: 4_000 });
    await directory.find("made-up");
    await directory.find("made-up");
    expect(source.gets).toEqual(["made-up"]);
  });
});

describe("an environment made again under its name", () => {
  it("when a load finds a newer incarnation than the one held, then what was cached for the old one is dropped", async () => {
    const { directory, source, gone } = setup();
    source.put(environmentRecord("env-a"));
    await directory.find("env-a");
    source.put(environmentRecord("env-a", { createTime: new Date(Date.UTC(2030, 0, 2)) }));
    await directory.apply({ type: "created", name: "env-a" });
    expect(gone).toEqual(["env-a"]);
  });
});
