import type { Logger } from "pino";
import type { Environment } from "../src/domain/environments/environments.js";
import { incarnationOf } from "../src/domain/environments/environments.js";
import type { MasterKeyRotation } from "../src/domain/environments/master-key-rotation.js";
import type { RewrapQueue } from "../src/domain/environments/ports.js";

/**
 * How often a worker process looks for data keys to move to the current master key. It reads memory only,
 * so often costs nothing: a worker that takes environments over from a stopped one moves them within seconds.
 */
export const rewrapSweepEveryMs = 5_000;

export interface RewrapSweepDeps {
  /** The environments this process serves (its share of the fleet's). */
  served(): string[];
  /** The active environments as this process's directory holds them: no I/O. */
  known(): Environment[];
  rotation: Pick<MasterKeyRotation, "needsRewrap">;
  queue: RewrapQueue;
  currentFingerprint: string;
  logger: Logger;
}

/**
 * Queues the rewrap of every served environment whose data key is under
 * another master key this replica has. It reads only what the directory holds
 * in memory, so when every data key is under the current key it costs no
 * round trip at all; a job is queued once per environment and key (its id).
 */
export function createRewrapSweep(deps: RewrapSweepDeps) {
  const { logger } = deps;
  return async function sweepRewraps(): Promise<string[]> {
    const served = new Set(deps.served());
    const due = deps.known().filter((env) => served.has(env.name) && deps.rotation.needsRewrap(env));
    const queued: string[] = [];
    for (const env of due) {
      try {
        await deps.queue.request(env.name, incarnationOf(env), deps.currentFingerprint);
        queued.push(env.name);
      } catch (error) {
        logger.warn(
          { err: error, environment: env.name },
          "could not queue a data key's rewrap; the next sweep tries again",
        );
      }
    }
    if (queued.length > 0) logger.info({ environments: queued }, "rewraps of data keys queued");
    return queued;
  };
}
