import type { Logger } from "pino";
import { withTimeout } from "../async.js";
import type { Clock } from "../domain/clock.js";
import { BackendUnavailableError } from "../domain/errors.js";

export interface AvailabilityGateDeps {
  /** The backend's name in errors and logs, such as `MongoDB`. */
  backend: string;
  /** One round trip that proves the backend answers: a ping. */
  ping(): Promise<unknown>;
  /** Whether an error says the backend could not be reached at all (not that it refused one request). */
  isUnreachable(error: unknown): boolean;
  /**
   * How long a ping may take; one that takes longer proves nothing either
   * way, unless `unreachableNow` says the driver itself reaches no server.
   */
  pingTimeoutMs: number;
  /** The driver's own view: no server reachable now (its monitoring failed). A timed-out ping then counts as unreachable. */
  unreachableNow?(): boolean;
  /**
   * Pings that time out one after the other before the backend counts as
   * unreachable anyway: a database black-holed by the network (no refusal,
   * no reset) is seen by the driver only after its own timeouts.
   */
  maxTimeoutsInARow?: number;
  /**
   * While closed, the gate pings by itself this often (unless someone else
   * pinged meanwhile), so it opens again soon after the backend is back, also
   * in a process without a health monitor.
   */
  recheckMs: number;
  clock: Clock;
  logger: Pick<Logger, "warn" | "info" | "debug">;
}

/** Every member an async function: what `guard` can wrap. */
type AsyncMembers<T> = { [K in keyof T]: (...args: never[]) => Promise<unknown> };

class PingTimeoutError extends Error {}

export type AvailabilityGate = ReturnType<typeof createAvailabilityGate>;

/**
 * "This backend is known down", so calls that need it fail at once with
 * UNAVAILABLE instead of waiting out the driver's server selection (5 s).
 *
 * Only a ping moves the gate: one that answers opens it; one that fails
 * because the backend cannot be reached closes it, and so does one that
 * times out while the driver's own monitoring reaches no server (its
 * operations then wait out server selection rather than fail), or the third
 * ping in a row to time out (a black-holed network: 3 s at the health
 * monitor's pace). A single slow ping, or one that fails otherwise, proves
 * nothing: it leaves the gate as it was. The health monitor pings every second; an operation that fails as
 * unreachable pings at once, so the gate knows within one round trip; while
 * closed, the gate keeps pinging until one answers. Pings never overlap.
 *
 * On the hot path the gate costs one boolean test per repository call.
 */
export function createAvailabilityGate(deps: AvailabilityGateDeps) {
  const { backend, isUnreachable, pingTimeoutMs, recheckMs, clock, logger } = deps;
  let down = false;
  /**
   * Whether a ping ever answered. Until one has, a closed gate is start-up
   * (the backend not there yet), not an outage: its closing and opening are
   * debug lines; whether the first connection takes too long is the
   * connection's own retry loop to say.
   */
  let answeredOnce = false;
  let timeoutsInARow = 0;
  const maxTimeoutsInARow = deps.maxTimeoutsInARow ?? 3;
  let downSince = 0;
  let lastPingAt = Number.NEGATIVE_INFINITY;
  let pinging: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function open(): void {
    clearTimeout(timer);
    timer = undefined;
    const starting = !answeredOnce;
    answeredOnce = true;
    if (!down) return;
    down = false;
    const details = { backend, downMs: clock.now().getTime() - downSince };
    if (starting) logger.debug(details, "backend reachable again; calls pass");
    else logger.info(details, "backend reachable again; calls pass");
  }

  function close(error: unknown): void {
    if (!down) {
      down = true;
      downSince = clock.now().getTime();
      const message = "backend unreachable; calls that need it fail at once until a ping answers";
      if (answeredOnce) logger.warn({ err: error, backend }, message);
      else logger.debug({ backend, reason: error instanceof Error ? error.message : String(error) }, message);
    }
    recheckLater();
  }

  function recheckLater(): void {
    if (stopped || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (!down || stopped) return;
      if (clock.now().getTime() - lastPingAt < recheckMs) return recheckLater();
      // The outcome is the gate's new state; the rejection of a failed ping has nothing more to say.
      probe()
        .catch(() => undefined)
        .finally(() => {
          if (down) recheckLater();
        });
    }, recheckMs);
    timer.unref();
  }

  async function pingOnce(): Promise<void> {
    lastPingAt = clock.now().getTime();
    try {
      await withTimeout(
        deps.ping(),
        pingTimeoutMs,
        () => new PingTimeoutError(`${backend} did not answer within ${pingTimeoutMs} ms`),
      );
    } catch (error) {
      const timedOut = error instanceof PingTimeoutError;
      timeoutsInARow = timedOut ? timeoutsInARow + 1 : 0;
      const unreachable = timedOut
        ? deps.unreachableNow?.() === true || timeoutsInARow >= maxTimeoutsInARow
        : isUnreachable(error);
      if (unreachable) close(error);
      throw error;
    }
    timeoutsInARow = 0;
    open();
  }

  /** Pings (joining a ping under way) and sets the gate by the outcome; rejects when the ping failed. */
  function probe(): Promise<void> {
    pinging ??= pingOnce().finally(() => {
      pinging = undefined;
    });
    return pinging;
  }

  /** An operation failed: if it looks like the backend is gone, ping now rather than at the next round. */
  function suspect(error: unknown): void {
    if (down || stopped || !isUnreachable(error)) return;
    probe().catch(() => undefined);
  }

  /**
   * The same object with every method checking the gate first: while it is
   * closed, a call rejects at once with BackendUnavailableError (UNAVAILABLE,
   * BACKEND_UNAVAILABLE) and never reaches the backend.
   */
  function guard<T extends AsyncMembers<T>>(target: T): T {
    const guarded: Partial<Record<keyof T, unknown>> = {};
    for (const name of Object.keys(target) as (keyof T)[]) {
      const method: (...args: never[]) => Promise<unknown> = target[name];
      guarded[name] = (...args: never[]) => {
        if (down) return Promise.reject(new BackendUnavailableError(backend));
        return method.apply(target, args).catch((error: unknown) => {
          suspect(error);
          throw error;
        });
      };
    }
    // Every member of T was copied above, each with T's own signature.
    return guarded as T;
  }

  return {
    probe,
    suspect,
    guard,
    isDown: () => down,
    /** Stops the gate's own pings (shutdown); the gate keeps its last state. */
    stop(): void {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
