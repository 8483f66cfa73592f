import type { CommandStartedEvent, MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { EnvironmentService } from "../../src/gen/roomkey/v1/environment_service_pb.js";
import { TokenService, VerifyStatus } from "../../src/gen/roomkey/v1/token_service_pb.js";
import { createLogger } from "../../src/logger.js";
import { createMongoClient, isDuplicateKey } from "../../src/storage/mongo.js";
import { randomEnvironmentName, randomPrefix } from "../helpers/names.js";
import { dropDeployment, startDeployment, startTestServer, testConfig } from "../helpers/server.js";

const t = TokenService.method;

describe("the MongoDB concerns on the real database", () => {
  it("when roomkey runs with the default settings, then its client writes to a journaled majority and reads majority from the primary, and a token made and revoked through the API reads back revoked", async () => {
    let mongo: MongoClient | undefined;
    const d = await startDeployment(testConfig(), "all", {
      seams: {
        inspect: ({ clients }) => {
          mongo = clients.mongo;
        },
      },
    });
    try {
      expect(mongo?.writeConcern).toMatchObject({ w: "majority", journal: true, wtimeoutMS: 10_000 });
      expect(mongo?.readConcern?.level).toBe("majority");
      expect(mongo?.readPreference.mode).toBe("primary");

      // Every write below goes out with that write concern, and every read with that read concern.
      const env = randomEnvironmentName();
      await d.environments.unary(EnvironmentService.method.createEnvironment, {}, d.admin(env));
      const created = await d.tokens.unary(
        t.createToken,
        { name: "concerns", scopes: ["tokens:verify"] },
        d.admin(env),
      );
      const id = created.token?.id ?? "";
      expect((await d.tokens.unary(t.verifyToken, { token: created.secret }, d.admin(env))).status).toBe(
        VerifyStatus.VALID,
      );
      await d.tokens.unary(t.revokeToken, { id }, d.admin(env));
      expect((await d.tokens.unary(t.verifyToken, { token: created.secret }, d.admin(env))).status).toBe(
        VerifyStatus.REVOKED,
      );
    } finally {
      await d.stop();
    }
  });

  it("when the settings name two members, local reads, no journal and a 2.5 s timeout, then roomkey's client carries exactly those", async () => {
    const config = testConfig({
      ROOMKEY_MONGO_WRITE_CONCERN: "2",
      ROOMKEY_MONGO_WRITE_TIMEOUT_MS: "2500",
      ROOMKEY_MONGO_JOURNAL: "false",
      ROOMKEY_MONGO_READ_CONCERN: "local",
    });
    let mongo: MongoClient | undefined;
    const server = await startTestServer(config, "api", createLogger(config.ROOMKEY_LOG_LEVEL), {
      inspect: ({ clients }) => {
        mongo = clients.mongo;
      },
    });
    try {
      expect(mongo?.writeConcern).toMatchObject({ w: 2, journal: false, wtimeoutMS: 2500 });
      expect(mongo?.readConcern?.level).toBe("local");
      expect(mongo?.readPreference.mode).toBe("primary");
    } finally {
      await server.stop();
      await dropDeployment(config);
    }
  });

  it("when a claim is inserted twice and read back with the default settings, then the commands carry the concerns and the database acknowledges the first and refuses the second as a duplicate key", async () => {
    const config = testConfig();
    const client = createMongoClient(config.MONGODB_URL, "roomkey-concerns-test", config);
    client.options.monitorCommands = true;
    const started: CommandStartedEvent[] = [];
    client.on("commandStarted", (event) => started.push(event));
    const db = client.db(`${randomPrefix()}_concerns`);
    try {
      const claims = db.collection<{ _id: string; at: Date }>("transitions");
      const inserted = await claims.insertOne({ _id: "accounts/acc_1@1/1", at: new Date() });
      expect(inserted.acknowledged).toBe(true);
      const again = await claims.insertOne({ _id: "accounts/acc_1@1/1", at: new Date() }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(isDuplicateKey(again)).toBe(true);
      expect(await claims.findOne({ _id: "accounts/acc_1@1/1" })).not.toBeNull();

      const insert = started.find((event) => event.commandName === "insert");
      expect(insert?.command.writeConcern).toEqual({ w: "majority", j: true, wtimeout: 10_000 });
      const find = started.find((event) => event.commandName === "find");
      expect(find?.command.readConcern).toEqual({ level: "majority" });
    } finally {
      await db.dropDatabase();
      await client.close();
    }
  });
});
