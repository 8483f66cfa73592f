import type { ServiceImpl } from "@connectrpc/connect";
import { RoomkeyError } from "../../domain/errors.js";
import type { EnvironmentService } from "../../gen/roomkey/v1/environment_service_pb.js";

/** DiffIntegrations and PromoteIntegrations. */
export function createPromotionHandlers(): Pick<
  ServiceImpl<typeof EnvironmentService>,
  "diffIntegrations" | "promoteIntegrations"
> {
  const todo = async (): Promise<never> => {
    throw new RoomkeyError("unimplemented", "NOT_IMPLEMENTED", "not available yet");
  };
  return { diffIntegrations: todo, promoteIntegrations: todo };
}
