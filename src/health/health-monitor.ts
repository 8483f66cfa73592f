import type { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { withTimeout } from "../async.js";

export interface Probe {
  name: string;
  check(): Promise<unknown>;
}

export interface HealthMonitorDeps {
  health: Pick<HealthImplementation, "setStatus">;
  /** Service names reported, besides the server as a whole (""). */
  services: readonly string[];
  probes: readonly Probe[];
  intervalMs: number;
  timeoutMs: number;
  logger: Pick<Logger, "warn" | "info" | "debug">;
  /** How long a backend may stay unreachable at start-up before it is worth a warning (`backendStartupGraceMs`). */
  startupGraceMs?: number;
  now?: () => number;
}

/**
 * A backend that has not answered yet at start-up is expected for a moment:
 * the connections open in the background while the servers start. Only when
 * one still does not answer after this long is it a warning.
 */
export const backendStartupGraceMs = 10_000;

/**
 * Reports SERVING only while every backend answers and the server is ready
 * and not shutting down; NOT_SERVING otherwise, checked every interval.
 *
 * A backend that stops answering is a warning at once. One that has not
 * answered yet since start-up is logged at debug (without a stack), and is a
 * warning only once it has lasted `startupGraceMs`.
 */
export function createHealthMonitor(deps: HealthMonitorDeps) {
  const { health, services, probes, intervalMs, timeoutMs, logger } = deps;
  const startupGraceMs = deps.startupGraceMs ?? backendStartupGraceMs;
  const now = deps.now ?? Date.now;
  let ready = false;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let serving: boolean | undefined;
  let startedAt = 0;
  const failing = new Set<string>();
  /** Probes that answered at least once. */
  const answered = new Set<string>();
  /** Probes whose failure was logged as a warning, until they answer again. */
  const warned = new Set<string>();

  function failed(probe: string, error: unknown): void {
    const first = !failing.has(probe);
    failing.add(probe);
    if (warned.has(probe)) return;
    if (answered.has(probe)) {
      logger.warn({ err: error, probe }, "backend unreachable");
      warned.add(probe);
    } else if (now() - startedAt >= startupGraceMs) {
      logger.warn({ err: error, probe, sinceStartMs: now() - startedAt }, "backend still unreachable since start-up");
      warned.add(probe);
    } else if (first) {
      logger.debug(
        { probe, reason: error instanceof Error ? error.message : String(error) },
        "backend not answering yet",
      );
    }
  }

  function passed(probe: string): void {
    failing.delete(probe);
    answered.add(probe);
    if (warned.delete(probe)) logger.info({ probe }, "backend answers again");
  }

  function publish(): void {
    const next = ready && !stopping && failing.size === 0;
    if (next === serving) return;
    serving = next;
    const status = next ? "SERVING" : "NOT_SERVING";
    for (const service of ["", ...services]) health.setStatus(service, status);
    logger.info({ status, failing: [...failing] }, "health status changed");
  }

  async function probeAll(): Promise<void> {
    await Promise.all(
      probes.map(async (probe) => {
        try {
          await withTimeout(
            probe.check(),
            timeoutMs,
            () => new Error(`${probe.name} did not answer within ${timeoutMs} ms`),
          );
          passed(probe.name);
        } catch (error) {
          failed(probe.name, error);
        }
      }),
    );
    publish();
  }

  function schedule(): void {
    if (stopping) return;
    timer = setTimeout(() => {
      probeAll().finally(schedule);
    }, intervalMs);
  }

  return {
    /** Begins probing; SERVING once `markReady` was called and probes pass. */
    async start(): Promise<void> {
      startedAt = now();
      publish();
      await probeAll();
      schedule();
    },
    markReady(): void {
      ready = true;
      publish();
    },
    /** NOT_SERVING at once, for good: the first step of shutdown. */
    markStopping(): void {
      stopping = true;
      clearTimeout(timer);
      publish();
    },
  };
}
