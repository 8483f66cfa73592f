import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { RoomkeyError } from "../../domain/errors.js";

/**
 * A service of the contract whose feature has not landed: every method passes
 * the edge (environment, authentication, validation) and then answers
 * UNIMPLEMENTED.
 */
export function unimplementedService<S extends DescService>(service: S): ServiceImpl<S> {
  const impl: Record<string, unknown> = {};
  for (const method of service.methods) {
    const error = () =>
      new RoomkeyError("unimplemented", "NOT_IMPLEMENTED", `${service.typeName}/${method.name} is not available yet`);
    impl[method.localName] =
      method.methodKind === "server_streaming"
        ? // biome-ignore lint/correctness/useYield: fails before the first message
          async function* () {
            throw error();
          }
        : async () => {
            throw error();
          };
  }
  return impl as ServiceImpl<S>;
}
