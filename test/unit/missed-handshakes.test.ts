import { describe, expect, it } from "vitest";
import { createMissedHandshakes } from "../../src/queue/missed-handshakes.js";
import { deferred, memoryLogger, settle } from "../helpers/fakes.js";

function setup() {
  const requested: string[] = [];
  const failing = new Set<string>();
  const { logger } = memoryLogger();
  const missed = createMissedHandshakes({
    async requestSweep(environment) {
      if (failing.has(environment)) throw new Error("Redis is unavailable; retry later");
      requested.push(environment);
    },
    logger,
  });
  return { missed, requested, failing };
}

describe("missed handshakes", () => {
  it("when handshakes of two environments could not be queued, then once Redis is back each gets one sweep", async () => {
    const { missed, requested } = setup();
    missed.missed("dev");
    missed.missed("dev");
    missed.missed("prod");
    expect(missed.pending()).toBe(true);

    await missed.flush();

    expect(requested).toEqual(["dev", "prod"]);
    expect(missed.pending()).toBe(false);
    await missed.flush();
    expect(requested).toEqual(["dev", "prod"]);
  });

  it("when a sweep cannot be asked for yet, then flush does not reject and a later flush asks again", async () => {
    const { missed, requested, failing } = setup();
    missed.missed("dev");
    failing.add("dev");

    await missed.flush();
    expect(requested).toEqual([]);
    expect(missed.pending()).toBe(true);

    failing.clear();
    await missed.flush();
    expect(requested).toEqual(["dev"]);
    expect(missed.pending()).toBe(false);
  });

  it("when a handshake is missed while its environment's sweep is being asked for, then it stays for the next flush", async () => {
    const requested: string[] = [];
    const held = deferred<void>();
    const { logger } = memoryLogger();
    const missed = createMissedHandshakes({
      async requestSweep(environment) {
        requested.push(environment);
        if (requested.length === 1) await held.promise;
      },
      logger,
    });
    missed.missed("dev");
    const first = missed.flush();
    await settle();
    // That sweep may have listed the accounts already: this one needs another.
    missed.missed("dev");
    expect(missed.flush()).toBe(first);
    held.resolve();
    await first;

    expect(missed.pending()).toBe(true);
    await missed.flush();
    expect(requested).toEqual(["dev", "dev"]);
  });
});
