import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createKeyring, fingerprintOf, type WrappedDataKey } from "../../src/domain/crypto/envelope.js";
import {
  type Environment,
  EnvironmentReplacedError,
  incarnationOf,
} from "../../src/domain/environments/environments.js";
import { createMasterKeyRotation, dataKeysByMasterKey } from "../../src/domain/environments/master-key-rotation.js";
import type { DataKeyStore } from "../../src/domain/environments/ports.js";
import { environmentRecord } from "../helpers/fakes.js";

const keyA = randomBytes(32);
const keyB = randomBytes(32);
const onlyA = createKeyring({ currentId: "a", keys: [{ id: "a", key: keyA }] });
const bothBCurrent = createKeyring({
  currentId: "b",
  keys: [
    { id: "a", key: keyA },
    { id: "b", key: keyB },
  ],
});

/** Records in memory; `replaceDataKey` checks what the repository's compare-and-set checks. */
function memoryStore(records: Environment[]) {
  const byName = new Map(records.map((r) => [r.name, structuredClone(r)]));
  const writes: { name: string; to: WrappedDataKey }[] = [];
  const store: DataKeyStore & { writes: typeof writes; put(env: Environment): void } = {
    writes,
    put: (env) => byName.set(env.name, structuredClone(env)),
    async get(name) {
      const found = byName.get(name);
      return found && structuredClone(found);
    },
    async listAll() {
      return [...byName.values()].map((r) => structuredClone(r));
    },
    async replaceDataKey(name, incarnation, expectedVersion, from, to) {
      const found = byName.get(name);
      if (!found || incarnationOf(found) !== incarnation || found.version !== expectedVersion) return false;
      if (found.dataKey.wrapped !== from.wrapped) return false;
      found.dataKey = to;
      found.version++;
      writes.push({ name, to });
      return true;
    },
  };
  return store;
}

function setup(records: Environment[], keyring = bothBCurrent) {
  const store = memoryStore(records);
  const queued: { environment: string; incarnation: string; to: string }[] = [];
  const published: string[] = [];
  const rotation = createMasterKeyRotation({
    store,
    keyring,
    queue: {
      async request(environment, incarnation, to) {
        queued.push({ environment, incarnation, to });
      },
    },
    events: {
      async publish(event) {
        published.push(`${event.type}:${event.name}`);
      },
    },
  });
  return { store, rotation, queued, published };
}

/** An active environment whose data key is wrapped under master key A. */
function onA(name: string, overrides: Partial<Environment> = {}): { env: Environment; dataKey: Buffer } {
  const { key, wrapped } = onlyA.createDataKey(name);
  return { env: environmentRecord(name, { dataKey: wrapped, ...overrides }), dataKey: key };
}

const fpA = fingerprintOf(keyA);
const fpB = fingerprintOf(keyB);

describe("master-key rotation", () => {
  it("when a data key under an old key is rewrapped, then it opens under the current key to the same bytes, and once done a rerun changes nothing", async () => {
    const { env, dataKey } = onA("env-a");
    const { store, rotation, published } = setup([env]);
    const incarnation = incarnationOf(env);

    const first = await rotation.rewrap("env-a", incarnation, fpB);
    expect(first).toMatchObject({ outcome: "rewrapped", from: { id: "a", fingerprint: fpA }, to: { id: "b" } });
    const stored = await store.get("env-a");
    expect(stored?.dataKey.masterKeyId).toBe(fpB);
    expect(
      createKeyring({ currentId: "b", keys: [{ id: "b", key: keyB }] }).unwrap(
        "env-a",
        stored?.dataKey as WrappedDataKey,
      ),
    ).toEqual(dataKey);
    expect(published).toEqual(["updated:env-a"]);

    const again = await rotation.rewrap("env-a", incarnation, fpB);
    expect(again).toMatchObject({ outcome: "unchanged" });
    expect(store.writes).toHaveLength(1);
  });

  it("when the record changed between the read and the write, then the rewrap reads it again and writes once", async () => {
    const { env } = onA("env-a");
    const { store, rotation } = setup([env]);
    const realReplace = store.replaceDataKey.bind(store);
    let raced = false;
    store.replaceDataKey = async (...args) => {
      if (!raced) {
        raced = true;
        const now = (await store.get("env-a")) as Environment;
        store.put({ ...now, displayName: "renamed meanwhile", version: now.version + 1 });
      }
      return realReplace(...args);
    };
    expect(await rotation.rewrap("env-a", incarnationOf(env), fpB)).toMatchObject({ outcome: "rewrapped" });
    expect(store.writes).toHaveLength(1);
    expect((await store.get("env-a"))?.displayName).toBe("renamed meanwhile");
  });

  it("when the environment was deleted and created again, then the job for the old incarnation writes nothing", async () => {
    const { env } = onA("env-a");
    const { store, rotation } = setup([env]);
    const old = incarnationOf(env);
    store.put(onA("env-a", { createTime: new Date(env.createTime.getTime() + 1_000) }).env);
    await expect(rotation.rewrap("env-a", old, fpB)).rejects.toBeInstanceOf(EnvironmentReplacedError);
    expect(store.writes).toHaveLength(0);
  });

  it("when the data key's master key is not configured here, then it is skipped, never rewritten", async () => {
    const stranger = createKeyring(randomBytes(32)).createDataKey("env-x").wrapped;
    const env = environmentRecord("env-x", { dataKey: stranger });
    const { store, rotation, queued } = setup([env]);
    expect(await rotation.rewrap("env-x", incarnationOf(env), fpB)).toMatchObject({
      outcome: "skipped",
      fingerprint: stranger.masterKeyId,
    });
    expect(await rotation.requestRewraps()).toEqual([]);
    expect(queued).toEqual([]);
    expect(store.writes).toHaveLength(0);
  });

  it("when a job asks for another key than this replica's current one (a rollout), then the data key stays where it is", async () => {
    const { env } = onA("env-a");
    const { store, rotation } = setup([env]);
    expect(await rotation.rewrap("env-a", incarnationOf(env), fpA)).toMatchObject({ outcome: "skipped" });
    expect(store.writes).toHaveLength(0);
  });

  it("when some data keys are under old keys, then the status counts them per key and RewrapDataKeys queues exactly those", async () => {
    const stranger = createKeyring(randomBytes(32)).createDataKey("env-x").wrapped;
    const onB = bothBCurrent.createDataKey("env-b").wrapped;
    const records = [
      onA("env-a2").env,
      onA("env-a1").env,
      environmentRecord("env-b", { dataKey: onB }),
      environmentRecord("env-x", { dataKey: stranger }),
      onA("env-gone", { state: "deleting" }).env,
    ];
    const { rotation, queued } = setup(records);
    const status = await rotation.status();
    expect(status.keys).toEqual([
      { id: "b", fingerprint: fpB, current: true, configured: true, dataKeys: 1, environments: ["env-b"] },
      { id: "a", fingerprint: fpA, current: false, configured: true, dataKeys: 2, environments: ["env-a1", "env-a2"] },
      {
        id: stranger.masterKeyId,
        fingerprint: stranger.masterKeyId,
        current: false,
        configured: false,
        dataKeys: 1,
        environments: ["env-x"],
      },
    ]);
    expect(status.dataKeysOnOldKeys).toBe(3);
    expect(await rotation.requestRewraps()).toEqual(["env-a1", "env-a2"]);
    expect(queued.map((q) => q.to)).toEqual([fpB, fpB]);
    expect(rotation.unopenable(records)).toEqual([{ fingerprint: stranger.masterKeyId, environments: ["env-x"] }]);
  });

  it("when the gauge counts data keys, then configured keys go by id (0 included) and others by fingerprint", () => {
    const stranger = createKeyring(randomBytes(32)).createDataKey("env-x").wrapped;
    const counts = dataKeysByMasterKey(bothBCurrent, [onA("env-a").env, { dataKey: stranger }, onA("env-c").env]);
    expect(counts).toEqual({ b: 0, a: 2, [stranger.masterKeyId]: 1 });
  });
});
