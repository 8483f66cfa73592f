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
  logger: Logger;
}

/**
 * Reports SERVING only while every backend answers and the server is ready
 * and not shutting down; NOT_SERVING otherwise, checked every interval.
 */
export function createHealthMonitor(deps: HealthMonitorDeps) {
  const { health, services, probes, intervalMs, timeoutMs, logger } = deps;
  let ready = false;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let serving: boolean | undefined;
  const failing = new Set<string>();

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
          failing.delete(probe.name);
        } catch (error) {
          if (!failing.has(probe.name)) logger.warn({ err: error, probe: probe.name }, "backend unreachable");
          failing.add(probe.name);
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
