import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Account } from "../../src/domain/accounts/accounts.js";
import { EnvironmentReplacedError } from "../../src/domain/environments/environments.js";
import { createAccountRepository } from "../../src/storage/account-repository.js";
import {
  compareAndSet,
  finishClaim,
  purgeTransitions,
  type TransitionClaim,
  transitionsCollection,
} from "../../src/storage/versioned.js";
import { randomPrefix } from "../helpers/names.js";
import { backendUrls } from "../helpers/server.js";

const clients: MongoClient[] = [];
const dbName = `${randomPrefix()}_versioned`;

beforeAll(async () => {
  for (let i = 0; i < 4; i++) {
    const client = new MongoClient(backendUrls().mongodbUrl);
    await client.connect();
    clients.push(client);
  }
});

afterAll(async () => {
  await clients[0]?.db(dbName).dropDatabase();
  for (const client of clients) await client.close();
});

const db = (i: number) => {
  const client = clients[i % clients.length];
  if (!client) throw new Error("no client");
  return client.db(dbName);
};

describe("compareAndSet on the real database", () => {
  it("when four connections race to move one version, then exactly one wins, every round", async () => {
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      const id = `doc-${round}`;
      await db(0).collection<{ _id: string; version: number }>("docs").insertOne({ _id: id, version: 1 });
      const results = await Promise.all(
        [0, 1, 2, 3].map((i) => compareAndSet(db(i), "docs", { id, incarnation: "x" }, 1, { winner: i })),
      );
      expect(results.filter(Boolean), `round ${round}`).toHaveLength(1);
      const doc = await db(0)
        .collection<{ _id: string; version: number; winner?: number }>("docs")
        .findOne({ _id: id });
      expect(doc?.version).toBe(2);
      expect(doc?.winner).toBe(results.indexOf(true));
    }
  });

  it("when a winner stopped between its claim and its write, then the next writer finishes its change", async () => {
    const docs = db(0).collection<{ _id: string; version: number; state?: string }>("docs");
    await docs.insertOne({ _id: "stuck", version: 3 });
    // The claim as a crashed winner left it, older than the abandonment threshold.
    await db(0)
      .collection<{ _id: string; set: object; unset: string[]; at: Date }>(transitionsCollection.name)
      .insertOne({
        _id: "docs/stuck@x/3",
        set: { state: "claimed", version: 4 },
        unset: [],
        at: new Date(Date.now() - 60_000),
      });
    expect(await compareAndSet(db(1), "docs", { id: "stuck", incarnation: "x" }, 3, { state: "late" })).toBe(false);
    expect(await docs.findOne({ _id: "stuck" })).toEqual({ _id: "stuck", version: 4, state: "claimed" });
    expect(await compareAndSet(db(1), "docs", { id: "stuck", incarnation: "x" }, 4, { state: "next" })).toBe(true);
  });

  it("when a document is deleted and made again under its id, then its versions are claimed afresh", async () => {
    const docs = db(0).collection<{ _id: string; version: number }>("docs");
    await docs.insertOne({ _id: "again", version: 1 });
    expect(await compareAndSet(db(0), "docs", { id: "again", incarnation: "first" }, 1, {})).toBe(true);
    await docs.deleteOne({ _id: "again" });
    await docs.insertOne({ _id: "again", version: 1 });
    expect(await compareAndSet(db(0), "docs", { id: "again", incarnation: "second" }, 1, {})).toBe(true);
  });

  it("when a slow winner's claim was finished by another writer, then the winner still reports its win", async () => {
    const docs = db(0).collection<{ _id: string; version: number; state?: string }>("docs");
    await docs.insertOne({ _id: "slow", version: 1 });
    const claim = { _id: "docs/slow@x/1", set: { state: "mine", version: 2 }, unset: [], at: new Date() };
    // The winner inserted its claim, then stalled...
    await db(0).collection<typeof claim>(transitionsCollection.name).insertOne(claim);
    // ...long enough that another writer found it abandoned and finished it.
    expect(
      await compareAndSet(db(1), "docs", { id: "slow", incarnation: "x" }, 1, { state: "other" }, [], {
        abandonedAfterMs: -1,
      }),
    ).toBe(false);
    expect(await docs.findOne({ _id: "slow" })).toEqual({ _id: "slow", version: 2, state: "mine" });
    // The winner resumes: its write matches nothing, yet the transition is its own.
    expect(await finishClaim(db(0), "docs", "slow", claim)).toBe(true);
  });

  it("when a field is unset, then it is gone", async () => {
    const docs = db(0).collection<{ _id: string; version: number; oauth2?: object }>("docs");
    await docs.insertOne({ _id: "unset", version: 1, oauth2: { a: 1 } });
    expect(await compareAndSet(db(0), "docs", { id: "unset", incarnation: "x" }, 1, {}, ["oauth2"])).toBe(true);
    expect(await docs.findOne({ _id: "unset" })).toEqual({ _id: "unset", version: 2 });
  });

  it("when a writer's document does not exist, then the claim it inserted is gone when it returns", async () => {
    expect(await compareAndSet(db(0), "docs", { id: "never-there", incarnation: "x" }, 1, { state: "x" })).toBe(false);
    expect(
      await db(0).collection<TransitionClaim>(transitionsCollection.name).findOne({ _id: "docs/never-there@x/1" }),
    ).toBeNull();
  });
});

describe("transition claims bound to an environment incarnation, on the real database", () => {
  const claims = () => db(0).collection<TransitionClaim>(transitionsCollection.name);

  it("when purged for an incarnation, then claims of earlier incarnations and day-old claims go, the rest stay", async () => {
    const now = Date.now();
    const old = new Date(now - 2 * 86_400_000);
    await claims().insertMany([
      { _id: "p/fresh-unbound", set: {}, unset: [], at: new Date(now) },
      { _id: "p/fresh-current", set: {}, unset: [], at: new Date(now), environmentIncarnation: "2000" },
      { _id: "p/fresh-replaced", set: {}, unset: [], at: new Date(now), environmentIncarnation: "1000" },
      { _id: "p/fresh-successor", set: {}, unset: [], at: new Date(now), environmentIncarnation: "3000" },
      { _id: "p/old-unbound", set: {}, unset: [], at: old },
    ]);

    expect(await purgeTransitions(db(0), new Date(now - 86_400_000), "2000")).toBe(2);

    const left = await claims()
      .find({
        _id: { $in: ["p/fresh-unbound", "p/fresh-current", "p/fresh-replaced", "p/fresh-successor", "p/old-unbound"] },
      })
      .toArray();
    // A later incarnation's claims are live: a purge running for a replaced incarnation leaves them.
    expect(left.map((c) => c._id).sort()).toEqual(["p/fresh-current", "p/fresh-successor", "p/fresh-unbound"]);
  });

  it("when an account write is bound to an incarnation that is no longer current, then it writes nothing, claim included", async () => {
    const current = { value: "2000" };
    const repository = createAccountRepository({ db: () => db(0) }, { currentIncarnation: async () => current.value });
    const now = new Date();
    const account: Account = {
      id: "acc_incarnation0000000001",
      integration: "keyed",
      tenantId: "t",
      labels: {},
      status: "connecting",
      statusReason: "",
      authType: "api_key",
      createTime: now,
      updateTime: now,
      credentials: {},
      credentialsVersion: 1,
      handshake: { attempt: 1, startTime: now },
      version: 1,
    };
    await repository.insert("unused", account);

    const error = await repository.update("unused", account, { status: "active" }, [], "1000").catch((e) => e);
    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(await claims().findOne({ _id: `accounts/${account.id}@/1` })).toBeNull();
    expect((await repository.get("unused", account.id))?.status).toBe("connecting");

    const after = await repository.update("unused", account, { status: "active" }, [], "2000");
    expect(after?.status).toBe("active");
    expect(await claims().findOne({ _id: `accounts/${account.id}@/1` })).toMatchObject({
      environmentIncarnation: "2000",
    });
  });
});
