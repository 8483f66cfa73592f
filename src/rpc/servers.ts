import http from "node:http";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { type GrpcAdapterOptions, grpcService } from "./grpc-adapter.js";
import { addReflection } from "./reflection.js";

/** A service with its (edge-wrapped) implementation, ready for either transport. */
export interface ServiceBinding {
  service: DescService;
  connect(router: ConnectRouter): void;
  grpc(options: GrpcAdapterOptions): [ServiceDefinition, UntypedServiceImplementation];
}

export function bindService<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceBinding {
  return {
    service,
    connect: (router) => router.service(service, impl),
    grpc: (options) => grpcService(service, impl, options),
  };
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  bindings: readonly ServiceBinding[];
  health: HealthImplementation;
  maxMessageBytes: number;
  maxMetadataBytes: number;
  logger: Logger;
  shutdownSignal: AbortSignal;
}

/** Native gRPC (HTTP/2) on grpc-js: roomkey's services, health checking and reflection. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<{ server: Server; port: number }> {
  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    "grpc.max_metadata_size": options.maxMetadataBytes,
    "grpc.keepalive_permit_without_calls": 1,
  });
  for (const binding of options.bindings) {
    const [definition, handlers] = binding.grpc({ logger: options.logger, shutdownSignal: options.shutdownSignal });
    server.addService(definition, handlers);
  }
  options.health.addToServer(server);
  addReflection(
    server,
    options.bindings.map((b) => b.service),
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return { server, port };
}

export interface HttpServerOptions {
  host: string;
  port: number;
  bindings: readonly ServiceBinding[];
  maxMessageBytes: number;
  maxHeaderBytes: number;
  shutdownSignal: AbortSignal;
}

/** The Connect protocol and gRPC-Web over HTTP/1.1, from the same implementations. */
export async function startHttpServer(options: HttpServerOptions): Promise<{ server: http.Server; port: number }> {
  const handler = connectNodeAdapter({
    routes: (router) => {
      for (const binding of options.bindings) binding.connect(router);
    },
    readMaxBytes: options.maxMessageBytes,
    writeMaxBytes: options.maxMessageBytes,
    shutdownSignal: options.shutdownSignal,
  });
  const server = http.createServer({ maxHeaderSize: options.maxHeaderBytes }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}
