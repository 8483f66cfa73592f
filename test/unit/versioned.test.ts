import { type Db, type Document, MongoServerError } from "mongodb";
import { describe, expect, it } from "vitest";
import { EnvironmentReplacedError } from "../../src/domain/environments/environments.js";
import {
  compareAndSet,
  finishClaim,
  purgeTransitions,
  type TransitionClaim,
  transitionsCollection,
  type WriteGuard,
} from "../../src/storage/versioned.js";
import { rejectionOf } from "../helpers/fakes.js";

type Stored = Document & { _id: string };

/** Whether a stored document matches a filter of the shapes versioned.ts sends. */
function matches(doc: Stored, filter: Document): boolean {
  return Object.entries(filter).every(([field, condition]) => {
    if (field === "$or") return (condition as Document[]).some((branch) => matches(doc, branch));
    const value = doc[field];
    if (condition instanceof Date) return value instanceof Date && value.getTime() === condition.getTime();
    if (condition === null || typeof condition !== "object") return value === condition;
    return Object.entries(condition as Document).every(([operator, operand]) => {
      switch (operator) {
        case "$lt":
          return value !== undefined && value < operand;
        case "$ne":
          return value !== operand;
        case "$exists":
          return (value !== undefined) === operand;
        default:
          throw new Error(`the fake database does not know ${operator}`);
      }
    });
  });
}

/**
 * An in-memory database with the few commands compareAndSet sends, and a log
 * of every write, so a test can tell what was written and where. `beforeWrite`
 * lets a test act between two of the writer's commands.
 */
class FakeDb {
  readonly collections = new Map<string, Map<string, Stored>>();
  readonly writes: string[] = [];
  beforeWrite: ((what: string) => void | Promise<void>) | undefined;

  docs(name: string): Map<string, Stored> {
    let found = this.collections.get(name);
    if (!found) {
      found = new Map();
      this.collections.set(name, found);
    }
    return found;
  }

  private async write(what: string): Promise<void> {
    await this.beforeWrite?.(what);
    this.writes.push(what);
  }

  collection(name: string) {
    const docs = () => this.docs(name);
    return {
      insertOne: async (doc: Stored) => {
        await this.write(`insert ${name}/${doc._id}`);
        if (docs().has(doc._id)) throw new MongoServerError({ message: "E11000 duplicate key error", code: 11000 });
        docs().set(doc._id, structuredClone(doc));
        return { insertedId: doc._id };
      },
      findOne: async (filter: Document) => {
        const found = [...docs().values()].find((doc) => matches(doc, filter));
        return found ? structuredClone(found) : null;
      },
      updateOne: async (filter: Document, update: { $set?: Document; $unset?: Document }) => {
        await this.write(`update ${name}/${String(filter._id)}`);
        const found = [...docs().values()].find((doc) => matches(doc, filter));
        if (!found) return { matchedCount: 0 };
        Object.assign(found, structuredClone(update.$set ?? {}));
        for (const field of Object.keys(update.$unset ?? {})) delete found[field];
        return { matchedCount: 1 };
      },
      deleteOne: async (filter: Document) => {
        await this.write(`delete ${name}/${String(filter._id)}`);
        const found = [...docs().values()].find((doc) => matches(doc, filter));
        if (found) docs().delete(found._id);
        return { deletedCount: found ? 1 : 0 };
      },
      deleteMany: async (filter: Document) => {
        await this.write(`deleteMany ${name}`);
        const found = [...docs().values()].filter((doc) => matches(doc, filter));
        for (const doc of found) docs().delete(doc._id);
        return { deletedCount: found.length };
      },
    };
  }

  /** compareAndSet's parameter type; the fake has only the part of Db that it uses. */
  asDb(): Db {
    return this as unknown as Db;
  }

  claims(): TransitionClaim[] {
    return [...this.docs(transitionsCollection.name).values()] as TransitionClaim[];
  }
}

/** A guard over an environment whose current incarnation the test sets. */
function guardOf(incarnation: string, current: { value: string | undefined }): WriteGuard & { checks: number } {
  const guard = {
    incarnation,
    checks: 0,
    async check() {
      guard.checks++;
      if (current.value !== incarnation) throw new EnvironmentReplacedError("env-a", incarnation);
    },
  };
  return guard;
}

describe("compareAndSet bound to an incarnation", () => {
  it("when the incarnation is current, then the change is written and its claim says which incarnation wrote it", async () => {
    const db = new FakeDb();
    db.docs("accounts").set("acc_1", { _id: "acc_1", version: 1, status: "connecting" });
    const guard = guardOf("1000", { value: "1000" });

    const won = await compareAndSet(
      db.asDb(),
      "accounts",
      { id: "acc_1", incarnation: "" },
      1,
      { status: "active" },
      [],
      {
        guard,
      },
    );

    expect(won).toBe(true);
    expect(guard.checks).toBe(1);
    expect(db.docs("accounts").get("acc_1")).toEqual({ _id: "acc_1", version: 2, status: "active" });
    expect(db.claims()).toEqual([
      expect.objectContaining({ _id: "accounts/acc_1@/1", environmentIncarnation: "1000" }),
    ]);
  });

  it("when the environment was replaced, then nothing at all is written and the writer hears why", async () => {
    const db = new FakeDb();
    db.docs("accounts").set("acc_1", { _id: "acc_1", version: 1, status: "connecting" });

    const error = await rejectionOf(
      compareAndSet(db.asDb(), "accounts", { id: "acc_1", incarnation: "" }, 1, { status: "active" }, [], {
        guard: guardOf("1000", { value: "2000" }),
      }),
    );

    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(db.writes).toEqual([]);
    expect(db.docs("accounts").get("acc_1")).toEqual({ _id: "acc_1", version: 1, status: "connecting" });
  });

  it("when the environment is deleted, then a bound write is refused too", async () => {
    const db = new FakeDb();
    const error = await rejectionOf(
      compareAndSet(db.asDb(), "accounts", { id: "acc_1", incarnation: "" }, 1, { status: "active" }, [], {
        guard: guardOf("1000", { value: undefined }),
      }),
    );
    expect(error).toBeInstanceOf(EnvironmentReplacedError);
    expect(db.writes).toEqual([]);
  });

  it("when the environment is replaced between the check and the claim, then the claim that landed in the new database is removed by its writer", async () => {
    // The new incarnation's database: it has no document of the old one's id.
    const db = new FakeDb();
    const current = { value: "1000" };
    const guard = guardOf("1000", current);
    db.beforeWrite = () => {
      current.value = "2000";
    };

    const won = await compareAndSet(db.asDb(), "accounts", { id: "acc_old", incarnation: "" }, 3, { x: 1 }, [], {
      guard,
    });

    expect(won).toBe(false);
    expect(db.writes).toEqual([
      "insert transitions/accounts/acc_old@/3",
      "update accounts/acc_old",
      "delete transitions/accounts/acc_old@/3",
    ]);
    expect(db.claims()).toEqual([]);
    expect(db.docs("accounts").size).toBe(0);
  });

  it("when no guard is given, then the write is not checked and its claim carries no incarnation", async () => {
    const db = new FakeDb();
    db.docs("tokens").set("tok_1", { _id: "tok_1", version: 4 });

    expect(await compareAndSet(db.asDb(), "tokens", { id: "tok_1", incarnation: "" }, 4, { state: "expired" })).toBe(
      true,
    );
    expect(db.claims()).toEqual([expect.not.objectContaining({ environmentIncarnation: expect.anything() })]);
  });
});

describe("claims whose document does not exist", () => {
  it("when a writer's document is gone, then its claim is removed at once and the writer lost", async () => {
    const db = new FakeDb();

    const won = await compareAndSet(db.asDb(), "tokens", { id: "tok_gone", incarnation: "" }, 1, { state: "x" });

    expect(won).toBe(false);
    expect(db.claims()).toEqual([]);
  });

  it("when the document exists at another version, then the claim stays (it still guards that transition)", async () => {
    const db = new FakeDb();
    db.docs("tokens").set("tok_1", { _id: "tok_1", version: 5 });
    const claim: TransitionClaim = { _id: "tokens/tok_1@/3", set: { version: 4 }, unset: [], at: new Date() };
    db.docs(transitionsCollection.name).set(claim._id, claim);

    expect(await finishClaim(db.asDb(), "tokens", "tok_1", claim)).toBe(true);
    expect(db.claims()).toHaveLength(1);
  });

  it("when the writer cleans up, then it removes only its own claim, not another writer's under the same id", async () => {
    const db = new FakeDb();
    const mine: TransitionClaim = { _id: "tokens/tok_gone@/1", set: { version: 2 }, unset: [], at: new Date(1_000) };
    const theirs: TransitionClaim = { ...mine, at: new Date(2_000) };
    db.docs(transitionsCollection.name).set(theirs._id, theirs);

    expect(await finishClaim(db.asDb(), "tokens", "tok_gone", mine)).toBe(false);
    expect(db.claims()).toEqual([theirs]);
  });
});

describe("purgeTransitions", () => {
  function claimsAt(db: FakeDb, claims: Partial<TransitionClaim>[]) {
    for (const [i, claim] of claims.entries()) {
      const full = { _id: `c${i}`, set: {}, unset: [], at: new Date(), ...claim };
      db.docs(transitionsCollection.name).set(full._id, full);
    }
  }

  it("when given an incarnation, then claims of earlier incarnations go at once, day-old claims go, a successor's stay", async () => {
    const db = new FakeDb();
    const old = new Date(Date.now() - 2 * 86_400_000);
    claimsAt(db, [
      { _id: "fresh-unbound" },
      { _id: "fresh-current", environmentIncarnation: "2000" },
      { _id: "fresh-replaced", environmentIncarnation: "1000" },
      { _id: "fresh-successor", environmentIncarnation: "3000" },
      { _id: "old-unbound", at: old },
      { _id: "old-current", at: old, environmentIncarnation: "2000" },
    ]);

    expect(await purgeTransitions(db.asDb(), new Date(Date.now() - 86_400_000), "2000")).toBe(3);
    expect(db.claims().map((c) => c._id)).toEqual(["fresh-unbound", "fresh-current", "fresh-successor"]);
  });

  it("when no incarnation is given (the control database), then only day-old claims go", async () => {
    const db = new FakeDb();
    claimsAt(db, [
      { _id: "fresh", environmentIncarnation: "1000" },
      { _id: "old", at: new Date(0) },
    ]);

    expect(await purgeTransitions(db.asDb(), new Date(Date.now() - 86_400_000))).toBe(1);
    expect(db.claims().map((c) => c._id)).toEqual(["fresh"]);
  });
});
