import type { ServiceImpl } from "@connectrpc/connect";
import { RoomkeyError } from "../../domain/errors.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";

/** ListAuditEvents. */
export function createAuditHandlers(): Pick<ServiceImpl<typeof EnvironmentService>, "listAuditEvents"> {
  return {
    async listAuditEvents() {
      throw new RoomkeyError("unimplemented", "NOT_IMPLEMENTED", "not available yet");
    },
  };
}
