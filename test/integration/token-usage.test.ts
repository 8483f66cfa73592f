import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenRepository, tokenUsageCollection } from "../../src/storage/token-repository.js";
import { randomPrefix } from "../helpers/names.js";
import { backendUrls } from "../helpers/server.js";

const replicas: MongoClient[] = [];
const dbName = `${randomPrefix()}_usage`;

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const client = new MongoClient(backendUrls().mongodbUrl);
    await client.connect();
    replicas.push(client);
  }
});

afterAll(async () => {
  await replicas[0]?.db(dbName).dropDatabase();
  for (const client of replicas) await client.close();
});

function repository(client: MongoClient) {
  return createTokenRepository({ db: () => client.db(dbName) });
}

describe("last-used times on the real database", () => {
  // FerretDB 1.24 once hung for good here: one command updating 1,000 existing usage documents took its whole pool.
  it("when three replicas flush 200 tokens' uses at once, twice, then every token keeps a time of the last round and the database still answers", async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `tok_${String(i).padStart(22, "0")}`);
    const uses = (replica: number, round: number) =>
      new Map(ids.map((id, i) => [id, new Date(Date.UTC(2026, 0, 1, round, replica, 0, i))]));

    for (const round of [0, 1]) {
      await Promise.all(replicas.map((client, replica) => repository(client).recordUsage("any", uses(replica, round))));
    }
    const stored = async () =>
      new Map(
        (
          (await replicas[0]
            ?.db(dbName)
            .collection<{ _id: string; lastUsedTime: Date }>(tokenUsageCollection.name)
            .find({})
            .toArray()) ?? []
        ).map((doc) => [doc._id, doc.lastUsedTime]),
      );

    // MongoDB applies $max atomically and keeps the latest; FerretDB reads then writes, so of
    // concurrent flushes one replica's time may win. Either way no token falls back a round.
    const afterConcurrent = await stored();
    expect(afterConcurrent.size).toBe(ids.length);
    const earliest = uses(0, 1);
    const latest = uses(replicas.length - 1, 1);
    for (const id of ids) {
      const at = afterConcurrent.get(id)?.getTime() ?? 0;
      expect(at).toBeGreaterThanOrEqual(earliest.get(id)?.getTime() ?? Number.POSITIVE_INFINITY);
      expect(at).toBeLessThanOrEqual(latest.get(id)?.getTime() ?? 0);
    }

    // One replica at a time: a later time always replaces, an earlier one never does.
    await repository(replicas[1] as MongoClient).recordUsage("any", uses(0, 2));
    await repository(replicas[2] as MongoClient).recordUsage("any", uses(0, 0));
    expect(await stored()).toEqual(uses(0, 2));
    expect(await replicas[0]?.db(dbName).command({ ping: 1 })).toMatchObject({ ok: 1 });
  }, 60_000);
});
