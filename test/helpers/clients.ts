import type {
  DescMethodBiDiStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import { create, createRegistry, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  type GrpcObject,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { environmentHeader } from "../../src/domain/environments/environment-name.js";
import {
  type BadRequest,
  BadRequestSchema,
  type ErrorInfo,
  ErrorInfoSchema,
} from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.js";
import { grpcClientDefinition } from "../../src/rpc/grpc/grpc-adapter.js";

type GenericClient = InstanceType<ReturnType<typeof makeGenericClientConstructor>> & GrpcObject;

export type GrpcClient<S extends DescService> = ReturnType<typeof grpcClient<S>>;

/** A typed promise wrapper around a grpc-js client built from a protobuf-es service. */
export function grpcClient<S extends DescService>(service: S, address: string) {
  const Ctor = makeGenericClientConstructor(grpcClientDefinition(service), service.name);
  const client = new Ctor(address, credentials.createInsecure()) as GenericClient;
  const method = (name: string) => client[name] as unknown as (...args: unknown[]) => unknown;
  return {
    unary<I extends DescMethodUnary["input"], O extends DescMethodUnary["output"]>(
      m: DescMethodUnary<I, O>,
      request: MessageInitShape<I>,
      metadata: Metadata,
      options: { deadlineMs?: number } = {},
    ): Promise<MessageShape<O>> {
      return new Promise((resolve, reject) => {
        const callOptions = options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {};
        method(m.localName).call(
          client,
          create(m.input, request),
          metadata,
          callOptions,
          (error: ServiceError | null, response: MessageShape<O>) => (error ? reject(error) : resolve(response)),
        );
      });
    },
    stream<I extends DescMethodServerStreaming["input"], O extends DescMethodServerStreaming["output"]>(
      m: DescMethodServerStreaming<I, O>,
      request: MessageInitShape<I>,
      metadata: Metadata,
      options: { deadline?: number } = {},
    ): ClientReadableStream<MessageShape<O>> {
      return method(m.localName).call(client, create(m.input, request), metadata, options) as ClientReadableStream<
        MessageShape<O>
      >;
    },
    bidi<I extends DescMethodBiDiStreaming["input"], O extends DescMethodBiDiStreaming["output"]>(
      m: DescMethodBiDiStreaming<I, O>,
      metadata: Metadata = new Metadata(),
    ): ClientDuplexStream<MessageShape<I>, MessageShape<O>> {
      return method(m.localName).call(client, metadata) as ClientDuplexStream<MessageShape<I>, MessageShape<O>>;
    },
    close: () => client.close(),
  };
}

/** Metadata for a call: the environment and, when given, a bearer secret. */
export function metadataFor(environment: string | string[] | undefined, secret?: string): Metadata {
  const metadata = new Metadata();
  for (const value of Array.isArray(environment) ? environment : environment === undefined ? [] : [environment]) {
    metadata.add(environmentHeader, value);
  }
  if (secret !== undefined) metadata.add("authorization", `Bearer ${secret}`);
  return metadata;
}

export function headersFor(environment: string, secret?: string): Record<string, string> {
  return { [environmentHeader]: environment, ...(secret === undefined ? {} : { authorization: `Bearer ${secret}` }) };
}

export function connectClient<S extends DescService>(
  service: S,
  httpPort: number,
  protocol: "connect" | "grpc-web" = "connect",
): Client<S> {
  const options = { baseUrl: `http://127.0.0.1:${httpPort}`, httpVersion: "1.1" as const };
  return createClient(
    service,
    protocol === "connect" ? createConnectTransport(options) : createGrpcWebTransport(options),
  );
}

const detailRegistry = createRegistry(ErrorInfoSchema, BadRequestSchema);

/** The google.rpc details of a grpc-js error. */
export function grpcDetails(error: ServiceError): { errorInfo?: ErrorInfo; badRequest?: BadRequest } {
  const [raw] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!(raw instanceof Buffer)) return {};
  const status = fromBinary(StatusSchema, raw);
  const out: { errorInfo?: ErrorInfo; badRequest?: BadRequest } = {};
  for (const any of status.details) {
    const message = anyUnpack(any, detailRegistry);
    if (message?.$typeName === "google.rpc.ErrorInfo") out.errorInfo = message as ErrorInfo;
    if (message?.$typeName === "google.rpc.BadRequest") out.badRequest = message as BadRequest;
  }
  return out;
}

/** Awaits a call expected to fail and returns its grpc-js error. */
export async function grpcFailure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("the call was expected to fail but succeeded");
}

/** Whether a roomkey's gRPC health check answers SERVING now (false while it starts or when it cannot be reached). */
export async function isServing(address: string): Promise<boolean> {
  const health = grpcClient(Health, address);
  try {
    const answer = await health.unary(Health.method.check, { service: "" }, new Metadata(), { deadlineMs: 500 });
    return answer.status === HealthCheckResponse_ServingStatus.SERVING;
  } catch {
    return false;
  } finally {
    health.close();
  }
}

/** The error a call ended with, or undefined when it succeeded: for polling until a call is refused. */
export async function refusal(call: Promise<unknown> | undefined): Promise<ServiceError | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return error as ServiceError;
  }
}
