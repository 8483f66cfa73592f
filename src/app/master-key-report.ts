import type { Logger } from "pino";
import type { Environment } from "../domain/environments/environments.js";
import type { MasterKeyRotation } from "../domain/environments/master-key-rotation.js";

/**
 * Logs, as errors, the data keys this replica cannot open (their master key was removed from its
 * configuration too early): those environments fail MASTER_KEY_MISMATCH until the key is put back;
 * the others are served. Nothing is rewrapped or destroyed from here.
 */
export function reportUnopenableDataKeys(
  rotation: Pick<MasterKeyRotation, "unopenable">,
  known: readonly Environment[],
  logger: Logger,
): void {
  for (const { fingerprint, environments } of rotation.unopenable(known)) {
    logger.error(
      { fingerprint, environments },
      `data keys are wrapped by master key ${fingerprint}, which is not configured: these environments fail MASTER_KEY_MISMATCH until that key is put back in ROOMKEY_MASTER_KEYS`,
    );
  }
}
