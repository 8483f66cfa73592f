import { type Logger, pino } from "pino";
import type { Clock } from "../../src/domain/clock.js";
import { RoomkeyError } from "../../src/domain/errors.js";

/** A clock that only moves when the test says so. */
export function fakeClock(start = Date.UTC(2030, 0, 1)): Clock & { advance(ms: number): void; set(ms: number): void } {
  let now = start;
  return {
    now: () => new Date(now),
    advance(ms) {
      now += ms;
    },
    set(ms) {
      now = ms;
    },
  };
}

/** A promise the test settles by hand, to hold a dependency mid-flight. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every already-queued promise callback run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

/** The error a function throws; fails the test when it returns. */
export function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw, but it returned");
}

/** Narrows to RoomkeyError, failing with the actual value otherwise. */
export function asRoomkeyError(error: unknown): RoomkeyError {
  if (error instanceof RoomkeyError) return error;
  throw new Error(`expected a RoomkeyError, got ${String(error)}`);
}

/** A pino logger that keeps its lines in memory instead of writing anywhere. */
export function memoryLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => chunks.push(line) });
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter((line) => line !== "")
      .map((line): Record<string, unknown> => JSON.parse(line));
  return { logger, lines };
}
