import type { Logger } from "pino";

export interface MissedHandshakesDeps {
  /** Queues a one-off connecting sweep without grace on the environment's handshake queue. */
  requestSweep(environment: string): Promise<void>;
  logger: Logger;
}

export type MissedHandshakes = ReturnType<typeof createMissedHandshakes>;

/**
 * Environments where a handshake could not be queued (Redis unreachable; the
 * call still answered CONNECTING). Once Redis takes commands again, each gets
 * one sweep without grace, so that its accounts leave CONNECTING seconds
 * after Redis returns, not after the scheduled sweep's grace and interval.
 * Held in memory: if this process dies first, the scheduled sweep still finds
 * them, later.
 */
export function createMissedHandshakes({ requestSweep, logger }: MissedHandshakesDeps) {
  const environments = new Set<string>();
  let flushing: Promise<void> | undefined;

  async function flushOnce(): Promise<void> {
    for (const environment of [...environments]) {
      // Taken out first: a handshake missed while the sweep is being queued puts it back.
      environments.delete(environment);
      try {
        await requestSweep(environment);
        logger.info(
          { environment },
          "asked for a connecting sweep: handshakes could not be queued while Redis was away",
        );
      } catch (error) {
        environments.add(environment);
        logger.debug({ err: error, environment }, "could not ask for a connecting sweep yet");
        return;
      }
    }
  }

  return {
    /** A handshake of `environment` could not be queued. */
    missed(environment: string): void {
      environments.add(environment);
    },
    /** Whether some environment still waits for its sweep. */
    pending(): boolean {
      return environments.size > 0;
    },
    /**
     * Asks for the sweeps (Redis is back). Never rejects: what could not be
     * asked for stays for the next call. Calls during a flush share it.
     */
    flush(): Promise<void> {
      flushing ??= flushOnce().finally(() => {
        flushing = undefined;
      });
      return flushing;
    },
  };
}
