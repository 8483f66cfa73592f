import { describe, expect, it } from "vitest";
import { createOrphanSweeper } from "../../workers/orphan-sweeper.js";
import { memoryLogger } from "../helpers/fakes.js";

function setup(databases: string[], records: string[]) {
  const calls: string[] = [];
  const { logger, lines } = memoryLogger();
  const sweep = createOrphanSweeper({
    async listDatabases() {
      calls.push("listDatabases");
      return databases;
    },
    async listRecords() {
      calls.push("listRecords");
      return records;
    },
    async dropDatabase(environment) {
      calls.push(`drop:${environment}`);
    },
    logger,
  });
  return { sweep, calls, lines };
}

describe("createOrphanSweeper", () => {
  it("when some databases have no record, then only those are dropped and returned", async () => {
    const { sweep, calls } = setup(["env-a", "env-b", "env-c"], ["env-b", "env-d"]);

    expect(await sweep()).toEqual(["env-a", "env-c"]);
    expect(calls.filter((c) => c.startsWith("drop:"))).toEqual(["drop:env-a", "drop:env-c"]);
  });

  it("when every database has a record, then nothing is dropped", async () => {
    const { sweep, calls } = setup(["env-a", "env-b"], ["env-a", "env-b"]);

    expect(await sweep()).toEqual([]);
    expect(calls).toEqual(["listDatabases", "listRecords"]);
  });

  it("when records exist without databases, then nothing is dropped", async () => {
    const { sweep, calls } = setup([], ["env-a"]);
    expect(await sweep()).toEqual([]);
    expect(calls.some((c) => c.startsWith("drop:"))).toBe(false);
  });

  it("when sweeping, then databases are listed before records, so a database being created is never an orphan", async () => {
    const { sweep, calls } = setup(["env-a"], []);
    await sweep();
    expect(calls).toEqual(["listDatabases", "listRecords", "drop:env-a"]);
  });

  it("when a database is dropped, then a warning names its environment", async () => {
    const { sweep, lines } = setup(["env-a"], []);
    await sweep();
    expect(lines()).toEqual([expect.objectContaining({ level: 40, environment: "env-a" })]);
  });
});
