import type { ServiceImpl } from "@connectrpc/connect";
import type { MasterKeyRotation } from "../../domain/environments/master-key-rotation.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";

export interface MasterKeyHandlerDeps {
  rotation: Pick<MasterKeyRotation, "status" | "requestRewraps">;
}

/** GetMasterKeyStatus and RewrapDataKeys (admin key only: src/rpc/method-policy.ts). */
export function createMasterKeyHandlers({
  rotation,
}: MasterKeyHandlerDeps): Pick<ServiceImpl<typeof EnvironmentService>, "getMasterKeyStatus" | "rewrapDataKeys"> {
  return {
    async getMasterKeyStatus() {
      const status = await rotation.status();
      return {
        keys: status.keys.map((key) => ({
          id: key.id,
          fingerprint: key.fingerprint,
          current: key.current,
          configured: key.configured,
          dataKeys: key.dataKeys,
          environments: key.environments,
        })),
        dataKeysOnOldKeys: status.dataKeysOnOldKeys,
      };
    },
    async rewrapDataKeys() {
      return { queuedEnvironments: await rotation.requestRewraps() };
    },
  };
}
