import { status } from "@grpc/grpc-js";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { scopes } from "../../src/rpc/method-policy.js";
import { grpcClient, grpcFailure, metadataFor } from "../helpers/clients.js";
import {
  capturedLogger,
  databasesOf,
  dropDeployment,
  startTestServer,
  type TestServer,
  testConfig,
} from "../helpers/server.js";

const t = TokenService.method;
const log = capturedLogger("trace");
const secrets: string[] = [];
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(testConfig({ ROOMKEY_LOG_LEVEL: "trace" }), "all", log.logger);
});

afterAll(async () => {
  await server.stop();
  await dropDeployment(server.config);
});

describe("secrets never leave the response that issued them", () => {
  it("when a full token lifecycle runs with every log at trace level, then no secret is in any log line, error or stored document", async () => {
    const tokens = grpcClient(TokenService, server.grpcAddress);
    const environments = grpcClient(EnvironmentService, server.grpcAddress);
    const admin = metadataFor("staging", server.adminKey);
    const errors: string[] = [];

    const created = await tokens.unary(
      t.createToken,
      { name: "a", scopes: [...scopes], idempotencyKey: "once" },
      admin,
    );
    secrets.push(created.secret);
    await tokens.unary(t.createToken, { name: "a", scopes: [...scopes], idempotencyKey: "once" }, admin);
    const asToken = metadataFor("staging", created.secret);
    const child = await tokens.unary(t.createToken, { name: "child", scopes: ["tokens:verify"] }, asToken);
    secrets.push(child.secret);
    const rotated = await tokens.unary(t.rotateToken, { id: child.token?.id ?? "" }, asToken);
    secrets.push(rotated.secret);
    await tokens.unary(t.verifyToken, { token: child.secret }, asToken);
    await tokens.unary(t.verifyToken, { token: rotated.secret }, asToken);
    await environments
      .unary(EnvironmentService.method.getEnvironment, {}, metadataFor("staging", rotated.secret))
      .catch((e: Error) => errors.push(e.message));
    await tokens.unary(t.revokeToken, { id: rotated.token?.id ?? "" }, admin);
    for (const secret of [...secrets]) {
      // Refused and mistyped uses: the secret (or most of it) must not echo back in errors or logs.
      const typo = `${secret.slice(0, -1)}${secret.endsWith("a") ? "b" : "a"}`;
      for (const attempt of [secret, typo]) {
        const failure = await grpcFailure(
          environments.unary(EnvironmentService.method.getEnvironment, {}, metadataFor("production", attempt)),
        );
        // The right token in the wrong room, or a mistyped one (its environment part cannot be trusted).
        expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED]).toContain(failure.code);
        errors.push(failure.message);
        errors.push(
          (
            await grpcFailure(
              environments.unary(EnvironmentService.method.updateEnvironment, {}, metadataFor("staging", attempt)),
            )
          ).message,
        );
      }
    }
    // Let batched writes (last-used times) land too.
    await new Promise((r) => setTimeout(r, 1_000));

    const mongo = new MongoClient(server.config.MONGODB_URL);
    const stored: string[] = [];
    for (const name of await databasesOf(mongo, server.config.ROOMKEY_DB_PREFIX)) {
      for (const collection of await mongo.db(name).listCollections({}, { nameOnly: true }).toArray()) {
        for (const doc of await mongo.db(name).collection(collection.name).find().toArray())
          stored.push(JSON.stringify(doc));
      }
    }
    await mongo.close();

    expect(secrets).toHaveLength(3);
    expect(log.lines.length).toBeGreaterThan(10);
    expect(stored.length).toBeGreaterThan(0);
    const haystacks = { logs: log.lines.map((line) => JSON.stringify(line)), errors, stored };
    for (const secret of secrets) {
      const random = secret.slice(secret.lastIndexOf("_") + 1);
      for (const [where, lines] of Object.entries(haystacks)) {
        // The random part, or any 12 characters of it beyond the displayed prefix.
        const pieces = [random, random.slice(4, 16), random.slice(30, 42)];
        for (const piece of pieces) {
          expect(
            lines.filter((line) => line.includes(piece)),
            `${where} holds part of a secret`,
          ).toEqual([]);
        }
      }
    }
    tokens.close();
    environments.close();
  });
});
