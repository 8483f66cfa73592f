import { MongoNetworkError, MongoNotConnectedError, MongoServerError } from "mongodb";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BackendUnavailableError } from "../../src/domain/errors.js";
import { createAvailabilityGate } from "../../src/storage/availability-gate.js";
import { isMongoUnreachable } from "../../src/storage/mongo.js";
import { asRoomkeyError, memoryLogger, rejectionOf, settle } from "../helpers/fakes.js";

class Unreachable extends Error {}

/** A backend the test switches between answering, unreachable, hanging and refusing. */
function fakeBackend() {
  const backend = {
    state: "up" as "up" | "unreachable" | "hang" | "refuses",
    pings: 0,
    ping(): Promise<unknown> {
      backend.pings++;
      switch (backend.state) {
        case "up":
          return Promise.resolve({ ok: 1 });
        case "unreachable":
          return Promise.reject(new Unreachable("connect ECONNREFUSED"));
        case "refuses":
          return Promise.reject(new Error("command failed"));
        case "hang":
          return new Promise(() => {});
      }
    },
  };
  return backend;
}

function setup(options: { driverSeesNoServer?: () => boolean } = {}) {
  const backend = fakeBackend();
  const { logger, lines } = memoryLogger();
  const gate = createAvailabilityGate({
    backend: "MongoDB",
    ping: () => backend.ping(),
    isUnreachable: (error) => error instanceof Unreachable,
    pingTimeoutMs: 1_000,
    ...(options.driverSeesNoServer ? { unreachableNow: options.driverSeesNoServer } : {}),
    recheckMs: 1_000,
    // Fake timers move Date too.
    clock: { now: () => new Date() },
    logger,
  });
  const calls: string[] = [];
  const repository = gate.guard({
    async get(id: string) {
      calls.push(id);
      return { id };
    },
    async fail(error: Error) {
      calls.push("fail");
      throw error;
    },
  });
  return { gate, backend, repository, calls, lines };
}

/** Runs a probe and lets its outcome land; a failed ping is expected here. */
async function probed(gate: ReturnType<typeof setup>["gate"]): Promise<void> {
  await gate.probe().catch(() => undefined);
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("availability gate", () => {
  it("when the gate is open, then a guarded call reaches the backend and returns its result", async () => {
    const { gate, repository, calls } = setup();
    expect(gate.isDown()).toBe(false);
    expect(await repository.get("a")).toEqual({ id: "a" });
    expect(calls).toEqual(["a"]);
  });

  it("when a ping finds the backend unreachable, then guarded calls reject at once without reaching it", async () => {
    const { gate, backend, repository, calls } = setup();
    backend.state = "unreachable";
    await probed(gate);
    expect(gate.isDown()).toBe(true);
    let settled: unknown;
    repository.get("a").catch((error: unknown) => {
      settled = error;
    });
    // Settled with no timer run: nothing waits.
    await settle();
    expect(settled).toBeInstanceOf(BackendUnavailableError);
    const error = asRoomkeyError(settled);
    expect(error.kind).toBe("unavailable");
    expect(error.reason).toBe("BACKEND_UNAVAILABLE");
    expect(error.message).toBe("MongoDB is unreachable; retry later");
    expect(calls).toEqual([]);
  });

  it("when a ping takes longer than its timeout while the gate is open, then the gate stays open: slow is not down", async () => {
    const { gate, backend, repository } = setup();
    backend.state = "hang";
    const probe = gate.probe().catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(String(await probe)).toMatch(/did not answer within 1000 ms/);
    expect(gate.isDown()).toBe(false);
    expect(await repository.get("a")).toEqual({ id: "a" });
  });

  it("when a ping fails with a refusal from the backend, then the gate stays as it was", async () => {
    const { gate, backend } = setup();
    backend.state = "refuses";
    await probed(gate);
    expect(gate.isDown()).toBe(false);
    backend.state = "unreachable";
    await probed(gate);
    backend.state = "refuses";
    await probed(gate);
    expect(gate.isDown()).toBe(true);
  });

  it("when the gate is closed and pings then time out, then it stays closed: the driver stopped trying, it did not come back", async () => {
    const { gate, backend } = setup();
    backend.state = "unreachable";
    await probed(gate);
    backend.state = "hang";
    const probe = gate.probe().catch(() => undefined);
    await vi.advanceTimersByTimeAsync(1_000);
    await probe;
    expect(gate.isDown()).toBe(true);
  });

  it("when the gate is closed, then it pings by itself every second and opens once a ping answers", async () => {
    const { gate, backend, repository, lines } = setup();
    backend.state = "unreachable";
    await probed(gate);
    expect(backend.pings).toBe(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(backend.pings).toBe(4);
    expect(gate.isDown()).toBe(true);
    backend.state = "up";
    await vi.advanceTimersByTimeAsync(1_000);
    expect(gate.isDown()).toBe(false);
    expect(await repository.get("b")).toEqual({ id: "b" });
    // Open again: no more pings of its own.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(backend.pings).toBe(5);
    const messages = lines().map((line) => line.msg);
    expect(messages.filter((m) => String(m).startsWith("backend unreachable"))).toHaveLength(1);
    const reopened = lines().find((line) => line.msg === "backend reachable again; calls pass");
    expect(reopened?.downMs).toBe(4_000);
  });

  it("when someone else pinged within the last second, then the gate's own recheck skips its turn", async () => {
    const { gate, backend } = setup();
    backend.state = "unreachable";
    await probed(gate);
    await vi.advanceTimersByTimeAsync(500);
    await probed(gate); // the health monitor's ping
    expect(backend.pings).toBe(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(backend.pings).toBe(2);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(backend.pings).toBe(3);
  });

  it("when a guarded call fails as unreachable, then the gate pings at once and closes; many such failures make one ping", async () => {
    const { gate, backend, repository } = setup();
    backend.state = "unreachable";
    const failures = await Promise.all(
      [1, 2, 3].map(() => rejectionOf(repository.fail(new Unreachable("connection reset")))),
    );
    // The caller gets the backend's own error; the next calls get the gate's.
    for (const failure of failures) expect(failure).toBeInstanceOf(Unreachable);
    await settle();
    expect(backend.pings).toBe(1);
    expect(gate.isDown()).toBe(true);
    expect(await rejectionOf(repository.get("a"))).toBeInstanceOf(BackendUnavailableError);
  });

  it("when a guarded call fails as unreachable but the ping answers, then the gate stays open", async () => {
    const { gate, backend, repository } = setup();
    await rejectionOf(repository.fail(new Unreachable("one connection reset")));
    await settle();
    expect(backend.pings).toBe(1);
    expect(gate.isDown()).toBe(false);
  });

  it("when a guarded call fails otherwise, then the gate does not ping", async () => {
    const { gate, backend, repository } = setup();
    expect(String(await rejectionOf(repository.fail(new Error("duplicate key"))))).toBe("Error: duplicate key");
    await settle();
    expect(backend.pings).toBe(0);
    expect(gate.isDown()).toBe(false);
  });

  it("when pings are asked for while one is under way, then they share it", async () => {
    const { gate, backend } = setup();
    backend.state = "hang";
    const first = gate.probe().catch(() => undefined);
    const second = gate.probe().catch(() => undefined);
    expect(backend.pings).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    await Promise.all([first, second]);
    backend.state = "up";
    await gate.probe();
    expect(backend.pings).toBe(2);
  });

  it("when the gate is stopped while closed, then it pings no more and leaves no timer", async () => {
    const { gate, backend } = setup();
    backend.state = "unreachable";
    await probed(gate);
    gate.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(backend.pings).toBe(1);
  });

  it("when a repository is guarded, then it keeps every method", () => {
    const { repository } = setup();
    expect(Object.keys(repository).sort()).toEqual(["fail", "get"]);
  });
});

describe("isMongoUnreachable", () => {
  it("when the driver could not reach MongoDB, then the error counts as unreachable", () => {
    expect(isMongoUnreachable(new MongoNetworkError("connect ECONNREFUSED 127.0.0.1:27017"))).toBe(true);
    expect(isMongoUnreachable(new MongoNotConnectedError("not connected"))).toBe(true);
  });

  it("when MongoDB answered with an error, then it does not", () => {
    expect(isMongoUnreachable(new MongoServerError({ message: "E11000 duplicate key", code: 11000 }))).toBe(false);
    expect(isMongoUnreachable(new Error("something else"))).toBe(false);
  });
});

describe("a ping that times out while the driver reaches no server", () => {
  it("when the driver's monitoring has given up on every server, then a timed-out ping closes the gate", async () => {
    let noServer = true;
    const { gate, backend, repository } = setup({ driverSeesNoServer: () => noServer });
    backend.state = "hang";
    const ping = probed(gate);
    await vi.advanceTimersByTimeAsync(1_000);
    await ping;
    expect(gate.isDown()).toBe(true);
    const error = asRoomkeyError(await rejectionOf(repository.get("a")));
    expect(error.reason).toBe("BACKEND_UNAVAILABLE");
    noServer = false;
    backend.state = "up";
    await vi.advanceTimersByTimeAsync(1_000);
    await settle();
    expect(gate.isDown()).toBe(false);
  });

  it("when the driver still sees a server, then a timed-out ping leaves the gate open (a slow database is not a dead one)", async () => {
    const { gate, backend } = setup({ driverSeesNoServer: () => false });
    backend.state = "hang";
    const ping = probed(gate);
    await vi.advanceTimersByTimeAsync(1_000);
    await ping;
    expect(gate.isDown()).toBe(false);
  });
});

describe("a backend black-holed by the network", () => {
  it("when three pings in a row time out, then the gate closes although the driver still sees a server", async () => {
    const { gate, backend } = setup({ driverSeesNoServer: () => false });
    backend.state = "hang";
    for (let i = 0; i < 3; i++) {
      const ping = probed(gate);
      await vi.advanceTimersByTimeAsync(1_000);
      await ping;
      expect(gate.isDown()).toBe(i === 2);
    }
  });

  it("when a ping answers between two that time out, then the count starts again", async () => {
    const { gate, backend } = setup({ driverSeesNoServer: () => false });
    for (const state of ["hang", "hang", "up", "hang", "hang"] as const) {
      backend.state = state;
      const ping = probed(gate);
      await vi.advanceTimersByTimeAsync(1_000);
      await ping;
    }
    expect(gate.isDown()).toBe(false);
  });
});

describe("the gate's log levels", () => {
  it("when the backend has never answered, then closing and opening are debug lines; once it has, an outage warns", async () => {
    const { gate, backend, lines } = setup();
    backend.state = "unreachable";
    await probed(gate);
    backend.state = "up";
    await gate.probe();
    backend.state = "unreachable";
    await probed(gate);
    const levels = lines()
      .filter((line) => String(line.msg).startsWith("backend"))
      .map((line) => [line.level, line.msg]);
    expect(levels).toEqual([
      [20, "backend unreachable; calls that need it fail at once until a ping answers"],
      [20, "backend reachable again; calls pass"],
      [40, "backend unreachable; calls that need it fail at once until a ping answers"],
    ]);
  });
});
