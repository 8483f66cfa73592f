import type { ServiceImpl } from "@connectrpc/connect";
import { RoomkeyError } from "../../domain/errors.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";

/** GetMasterKeyStatus and RewrapDataKeys. */
export function createMasterKeyHandlers(): Pick<
  ServiceImpl<typeof EnvironmentService>,
  "getMasterKeyStatus" | "rewrapDataKeys"
> {
  const todo = async (): Promise<never> => {
    throw new RoomkeyError("unimplemented", "NOT_IMPLEMENTED", "not available yet");
  };
  return { getMasterKeyStatus: todo, rewrapDataKeys: todo };
}
