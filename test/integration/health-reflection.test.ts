import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  create,
  type DescMessage,
  type DescMethodBiDiStreaming,
  fromBinary,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { type ClientReadableStream, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../src/gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../src/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { createLogger } from "../../src/logger.js";
import { startRoomkey } from "../../src/main.js";
import { grpcClient, grpcDetails, grpcFailure, metadataFor } from "../helpers/clients.js";
import { randomEnvironmentName } from "../helpers/names.js";
import { type OwnService, ownFerretDb, ownRedis } from "../helpers/own-services.js";
import { dropDeployment, eventually, startTestServer, type TestServer, testConfig } from "../helpers/server.js";

const execFileAsync = promisify(execFile);

const expectedServices = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "roomkey.v1.AccountService",
  "roomkey.v1.EnvironmentService",
  "roomkey.v1.TokenService",
];

/** Records every status a health Watch stream reports. */
function watchHealth(address: string) {
  const client = grpcClient(Health, address);
  const seen: Serving[] = [];
  const stream: ClientReadableStream<{ status: Serving }> = client.stream(
    Health.method.watch,
    { service: "" },
    metadataFor(undefined),
  );
  let ended = false;
  stream.on("data", (response: { status: Serving }) => seen.push(response.status));
  stream.on("error", () => {
    ended = true;
  });
  stream.on("end", () => {
    ended = true;
  });
  return {
    seen,
    last: () => seen[seen.length - 1],
    ended: () => ended,
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

describe("health checking against backends this test owns", () => {
  let redis: OwnService;
  let mongo: OwnService;
  let server: TestServer;

  beforeAll(async () => {
    [redis, mongo] = await Promise.all([ownRedis(), ownFerretDb()]);
    server = await startTestServer(testConfig({ REDIS_URL: redis.url, MONGODB_URL: mongo.url }), "api");
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await Promise.all([redis?.dispose(), mongo?.dispose()]);
  });

  it("when both backends answer, then Check says SERVING for the server and each service", async () => {
    const health = grpcClient(Health, server.grpcAddress);
    for (const service of [
      "",
      "roomkey.v1.EnvironmentService",
      "roomkey.v1.TokenService",
      "roomkey.v1.AccountService",
    ]) {
      await eventually(
        async () =>
          (await health.unary(Health.method.check, { service }, metadataFor(undefined))).status === Serving.SERVING,
        5_000,
        `SERVING for "${service}"`,
      );
    }
    health.close();
  });

  it("when Redis goes away and comes back, then Watch reports NOT_SERVING and then SERVING", async () => {
    const watch = watchHealth(server.grpcAddress);
    await eventually(() => watch.last() === Serving.SERVING, 5_000, "SERVING at first");
    await redis.stop();
    const down = await eventually(() => watch.last() === Serving.NOT_SERVING, 10_000, "NOT_SERVING without Redis");
    await redis.start();
    const up = await eventually(() => watch.last() === Serving.SERVING, 15_000, "SERVING with Redis back");
    console.log(`redis down -> NOT_SERVING in ${down} ms; back -> SERVING in ${up} ms`);
    watch.close();
  });

  it("when MongoDB goes away and comes back, then Watch reports NOT_SERVING and then SERVING", async () => {
    const watch = watchHealth(server.grpcAddress);
    await eventually(() => watch.last() === Serving.SERVING, 5_000, "SERVING at first");
    await mongo.stop();
    const down = await eventually(() => watch.last() === Serving.NOT_SERVING, 10_000, "NOT_SERVING without MongoDB");
    await mongo.start();
    const up = await eventually(() => watch.last() === Serving.SERVING, 20_000, "SERVING with MongoDB back");
    console.log(`mongodb down -> NOT_SERVING in ${down} ms; back -> SERVING in ${up} ms`);
    watch.close();
  });

  it("when MongoDB is down, then calls fail with UNAVAILABLE and no internals", async () => {
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    await mongo.stop();
    try {
      const error = await environments
        .unary(EnvironmentService.method.getEnvironment, {}, metadataFor("development", server.adminKey))
        .then(
          () => undefined,
          (e: { code: number; details: string }) => e,
        );
      expect(error?.code).toBe(14);
      expect(error?.details).not.toMatch(/at |node_modules|mongodb:\/\//);
    } finally {
      await mongo.start();
      environments.close();
    }
  });

  it("when Redis is down, then DeleteEnvironment answers UNAVAILABLE at once and leaves the environment whole", async () => {
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    const name = randomEnvironmentName();
    await environments.unary(EnvironmentService.method.createEnvironment, {}, metadataFor(name, server.adminKey));
    await redis.stop();
    try {
      await eventually(
        async () => {
          const error = await grpcFailure(
            environments.unary(EnvironmentService.method.deleteEnvironment, {}, metadataFor(name, server.adminKey), {
              deadlineMs: 3_000,
            }),
          );
          return error.code === status.UNAVAILABLE && grpcDetails(error).errorInfo?.reason === "BACKEND_UNAVAILABLE";
        },
        10_000,
        "UNAVAILABLE",
      );
      const got = await environments.unary(
        EnvironmentService.method.getEnvironment,
        {},
        metadataFor(name, server.adminKey),
      );
      expect(got.environment?.name).toBe(name);
    } finally {
      await redis.start();
      environments.close();
    }
  });

  it("when health is asked with metadata over the cap, then RESOURCE_EXHAUSTED", async () => {
    const health = grpcClient(Health, server.grpcAddress);
    const metadata = metadataFor(undefined);
    metadata.set("x-padding", "p".repeat(server.config.ROOMKEY_MAX_METADATA_BYTES + 1));
    const error = await grpcFailure(health.unary(Health.method.check, {}, metadata));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    health.close();
  });

  it("when MongoDB is down at start, then the server says NOT_SERVING and recovers once MongoDB is up", async () => {
    await mongo.stop();
    const config = testConfig({ REDIS_URL: redis.url, MONGODB_URL: mongo.url });
    const app = await startRoomkey(config, "all", createLogger("silent"));
    try {
      const address = `127.0.0.1:${app.grpcPort}`;
      const health = grpcClient(Health, address);
      const check = async () => (await health.unary(Health.method.check, {}, metadataFor(undefined))).status;
      expect(await check()).toBe(Serving.NOT_SERVING);
      await new Promise((r) => setTimeout(r, 2_000));
      expect(await check()).toBe(Serving.NOT_SERVING);
      await mongo.start();
      const recovered = await eventually(async () => (await check()) === Serving.SERVING, 20_000, "SERVING");
      await app.ready;
      expect(app.servedEnvironments()).toEqual(["development", "production", "staging"]);
      const environments = grpcClient(EnvironmentService, address);
      const got = await environments.unary(
        EnvironmentService.method.getEnvironment,
        {},
        metadataFor("staging", config.ROOMKEY_ADMIN_KEY),
      );
      expect(got.environment?.name).toBe("staging");
      console.log(`SERVING ${recovered} ms after MongoDB came up`);
      environments.close();
      health.close();
    } finally {
      await app.shutdown();
    }
  });

  it("when a call is in flight at shutdown, then health turns NOT_SERVING at once and the call still finishes", async () => {
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    const watch = watchHealth(server.grpcAddress);
    await eventually(() => watch.last() === Serving.SERVING, 20_000, "SERVING before shutdown");
    // Freeze the database so the next call stays in flight.
    mongo.pause();
    const inFlight = environments.unary(
      EnvironmentService.method.getEnvironment,
      {},
      metadataFor("development", server.adminKey),
    );
    await new Promise((r) => setTimeout(r, 300));
    const shutdown = server.app.shutdown();
    await eventually(() => watch.last() === Serving.NOT_SERVING, 2_000, "NOT_SERVING on shutdown");
    mongo.resume();
    const response = await inFlight;
    expect(response.environment?.name).toBe("development");
    expect(await shutdown).toBe(true);
    watch.close();
    environments.close();
  });
});

describe("server reflection", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(testConfig(), "api");
  });

  afterAll(async () => {
    await server.stop();
    await dropDeployment(server.config);
  });

  async function ask(service: typeof ServerReflection | typeof ServerReflectionV1Alpha, request: object) {
    const client = grpcClient(service, server.grpcAddress);
    const method: DescMethodBiDiStreaming = service.method.serverReflectionInfo;
    const stream = client.bidi(method);
    const response = await new Promise<unknown>((resolve, reject) => {
      stream.on("data", resolve);
      stream.on("error", reject);
      stream.write(create(method.input, request as MessageInitShape<DescMessage>));
    });
    stream.end();
    client.close();
    return response as {
      messageResponse: { case: string; value: { service?: { name: string }[]; fileDescriptorProto?: Uint8Array[] } };
    };
  }

  for (const [version, service] of [
    ["v1", ServerReflection],
    ["v1alpha", ServerReflectionV1Alpha],
  ] as const) {
    it(`when ${version} lists services, then the three services, health and reflection are named`, async () => {
      const response = await ask(service, { messageRequest: { case: "listServices", value: "*" } });
      const names = response.messageResponse.value.service?.map((s) => s.name).sort();
      expect(names).toEqual(expectedServices);
    });
  }

  it("when a service's file is requested, then it and every file it imports can be fetched", async () => {
    const response = await ask(ServerReflection, {
      messageRequest: { case: "fileContainingSymbol", value: "roomkey.v1.EnvironmentService" },
    });
    const files = (response.messageResponse.value.fileDescriptorProto ?? []).map((bytes) =>
      fromBinary(FileDescriptorProtoSchema, bytes),
    );
    const service = files.find((f) => f.name === "roomkey/v1/environment_service.proto");
    expect(service?.service.map((s) => s.name)).toEqual(["EnvironmentService"]);
    expect(service?.dependency).toContain("buf/validate/validate.proto");
    for (const dependency of service?.dependency ?? []) {
      const found = await ask(ServerReflection, { messageRequest: { case: "fileByFilename", value: dependency } });
      expect(found.messageResponse.case, dependency).toBe("fileDescriptorResponse");
    }
  });

  const grpcurl = [process.env.GRPCURL, join(homedir(), "go", "bin", "grpcurl")].find(
    (path): path is string => path !== undefined && existsSync(path),
  );
  it.skipIf(!grpcurl)("when grpcurl lists and describes the server, then it needs no proto files", async () => {
    // Asynchronously: the server runs in this process and must keep answering.
    const run = async (args: string[]) =>
      (await execFileAsync(grpcurl ?? "grpcurl", args, { encoding: "utf8" })).stdout;
    const listed = await run(["-plaintext", server.grpcAddress, "list"]);
    expect(listed.trim().split("\n").sort()).toEqual(expectedServices);
    const described = await run(["-plaintext", server.grpcAddress, "describe", "roomkey.v1.Environment"]);
    expect(described).toContain(".google.protobuf.Timestamp create_time = 6;");
    const got = await run([
      "-plaintext",
      "-H",
      "roomkey-environment: staging",
      "-H",
      `authorization: Bearer ${server.adminKey}`,
      server.grpcAddress,
      "roomkey.v1.EnvironmentService/GetEnvironment",
    ]);
    expect(JSON.parse(got).environment.name).toBe("staging");
  });
});
