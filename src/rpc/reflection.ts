import { type DescFile, type DescService, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { Server } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { file_google_rpc_error_details } from "../gen/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../gen/google/rpc/status_pb.js";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Files in dependency order (imports before importers), each once. */
export function withDependencies(files: readonly DescFile[]): DescFile[] {
  const ordered: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (file: DescFile) => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    for (const dep of file.dependencies) visit(dep);
    ordered.push(file);
  };
  for (const file of files) visit(file);
  return ordered;
}

/**
 * Server reflection (v1 and v1alpha) describing roomkey's services, health
 * checking and reflection itself, so `grpcurl` needs no proto files. The
 * descriptors are protobuf-es's own: @grpc/reflection reads only the
 * serialized FileDescriptorProtos of the definition it is given.
 */
export function addReflection(server: Pick<Server, "addService">, services: readonly DescService[]): void {
  const files = withDependencies([
    ...services.map((s) => s.file),
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
    // Error details, so clients such as grpcurl can decode ErrorInfo and BadRequest.
    file_google_rpc_error_details,
    file_google_rpc_status,
  ]);
  // A package definition whose one message type carries every file's descriptor.
  const definition: PackageDefinition = {
    [FileDescriptorProtoSchema.typeName]: {
      format: "Protocol Buffer 3 DescriptorProto",
      type: FileDescriptorProtoSchema.proto,
      fileDescriptorProtos: files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto))),
      serialize: (message: object) => {
        if (!isMessage(message, FileDescriptorProtoSchema)) throw new TypeError("not a FileDescriptorProto");
        return Buffer.from(toBinary(FileDescriptorProtoSchema, message));
      },
      deserialize: (bytes: Buffer) => fromBinary(FileDescriptorProtoSchema, bytes),
    },
  };
  new ReflectionService(definition).addToServer(server);
}
