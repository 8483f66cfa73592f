import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createKeyring } from "../../src/domain/crypto/envelope.js";
import { incarnationOf } from "../../src/domain/environments/environments.js";
import { createMasterKeyRotation } from "../../src/domain/environments/master-key-rotation.js";
import { createRewrapSweep } from "../../workers/rewrap-sweep.js";
import { environmentRecord, memoryLogger } from "../helpers/fakes.js";

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

function sweepOf(known: ReturnType<typeof environmentRecord>[], served: string[], failFor?: string) {
  const queued: { environment: string; incarnation: string; to: string }[] = [];
  const queue = {
    async request(environment: string, incarnation: string, to: string) {
      if (environment === failFor) throw new Error("Redis is down");
      queued.push({ environment, incarnation, to });
    },
  };
  const unused = () => Promise.reject(new Error("the sweep reads no records"));
  const rotation = createMasterKeyRotation({
    store: { get: unused, listAll: unused, replaceDataKey: unused },
    keyring: bothBCurrent,
    queue,
    events: { publish: unused },
  });
  const sweep = createRewrapSweep({
    served: () => served,
    known: () => known,
    rotation,
    queue,
    currentFingerprint: bothBCurrent.current.fingerprint,
    logger: memoryLogger().logger,
  });
  return { sweep, queued };
}

describe("rewrap sweep", () => {
  it("when served environments are under an old key, then a rewrap to the current key is queued for each, and only for those", async () => {
    const old = environmentRecord("env-old", { dataKey: onlyA.createDataKey("env-old").wrapped });
    const elsewhere = environmentRecord("env-other", { dataKey: onlyA.createDataKey("env-other").wrapped });
    const done = environmentRecord("env-done", { dataKey: bothBCurrent.createDataKey("env-done").wrapped });
    const stranger = environmentRecord("env-x", {
      dataKey: createKeyring(randomBytes(32)).createDataKey("env-x").wrapped,
    });
    const { sweep, queued } = sweepOf([old, elsewhere, done, stranger], ["env-old", "env-done", "env-x"]);
    expect(await sweep()).toEqual(["env-old"]);
    expect(queued).toEqual([
      { environment: "env-old", incarnation: incarnationOf(old), to: bothBCurrent.current.fingerprint },
    ]);
  });

  it("when queueing one fails, then the others are still queued and the sweep does not throw", async () => {
    const envs = ["env-1", "env-2"].map((name) =>
      environmentRecord(name, { dataKey: onlyA.createDataKey(name).wrapped }),
    );
    const { sweep, queued } = sweepOf(envs, ["env-1", "env-2"], "env-1");
    expect(await sweep()).toEqual(["env-2"]);
    expect(queued.map((q) => q.environment)).toEqual(["env-2"]);
  });
});
