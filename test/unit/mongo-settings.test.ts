import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { createMongoClient } from "../../src/storage/mongo.js";

const required = {
  ROOMKEY_ADMIN_KEY: "a".repeat(32),
  ROOMKEY_MASTER_KEY: Buffer.alloc(32, 7).toString("base64"),
};

/** The message of the ConfigError that `env` stops start-up with. */
function refusal(env: Record<string, string>): string {
  try {
    loadConfig({ ...required, ...env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("the MongoDB write and read concern settings", () => {
  it("when none is set, then writes wait for a journaled majority for at most 10 s and reads are majority", () => {
    const config = loadConfig(required);
    expect(config.ROOMKEY_MONGO_WRITE_CONCERN).toBe("majority");
    expect(config.ROOMKEY_MONGO_WRITE_TIMEOUT_MS).toBe(10_000);
    expect(config.ROOMKEY_MONGO_JOURNAL).toBe(true);
    expect(config.ROOMKEY_MONGO_READ_CONCERN).toBe("majority");
  });

  it("when a number of members, a timeout, no journal and local reads are set, then each is taken", () => {
    const config = loadConfig({
      ...required,
      ROOMKEY_MONGO_WRITE_CONCERN: "3",
      ROOMKEY_MONGO_WRITE_TIMEOUT_MS: "2500",
      ROOMKEY_MONGO_JOURNAL: "false",
      ROOMKEY_MONGO_READ_CONCERN: "local",
    });
    expect(config.ROOMKEY_MONGO_WRITE_CONCERN).toBe(3);
    expect(config.ROOMKEY_MONGO_WRITE_TIMEOUT_MS).toBe(2500);
    expect(config.ROOMKEY_MONGO_JOURNAL).toBe(false);
    expect(config.ROOMKEY_MONGO_READ_CONCERN).toBe("local");
  });

  it.each([
    ["ROOMKEY_MONGO_WRITE_CONCERN", "0"],
    ["ROOMKEY_MONGO_WRITE_CONCERN", "51"],
    ["ROOMKEY_MONGO_WRITE_CONCERN", "-1"],
    ["ROOMKEY_MONGO_WRITE_CONCERN", "1.5"],
    ["ROOMKEY_MONGO_WRITE_CONCERN", "Majority"],
    ["ROOMKEY_MONGO_WRITE_CONCERN", ""],
    ["ROOMKEY_MONGO_WRITE_TIMEOUT_MS", "0"],
    ["ROOMKEY_MONGO_WRITE_TIMEOUT_MS", "soon"],
    ["ROOMKEY_MONGO_WRITE_TIMEOUT_MS", ""],
    ["ROOMKEY_MONGO_JOURNAL", "yes"],
    ["ROOMKEY_MONGO_READ_CONCERN", "available"],
    ["ROOMKEY_MONGO_READ_CONCERN", "linearizable"],
    ["ROOMKEY_MONGO_READ_CONCERN", "snapshot"],
  ])("when %s is %j, then start-up stops naming it", (name, value) => {
    expect(refusal({ ROOMKEY_MONGO_READ_CONCERN: "local", [name]: value })).toMatch(new RegExp(`^  ${name}: `, "m"));
  });

  it("when the write concern is a number and reads are majority, then start-up stops naming the write concern", () => {
    const message = refusal({ ROOMKEY_MONGO_WRITE_CONCERN: "1" });
    expect(message).toMatch(/^ {2}ROOMKEY_MONGO_WRITE_CONCERN: a number needs ROOMKEY_MONGO_READ_CONCERN=local/m);
  });
});

describe("MONGODB_URL options that the concern settings own", () => {
  it.each([
    ["w=1", "ROOMKEY_MONGO_WRITE_CONCERN"],
    ["journal=false", "ROOMKEY_MONGO_JOURNAL"],
    ["wtimeoutMS=500", "ROOMKEY_MONGO_WRITE_TIMEOUT_MS"],
    ["readConcernLevel=local", "ROOMKEY_MONGO_READ_CONCERN"],
  ])("when the URL sets %s against the setting, then start-up stops naming MONGODB_URL and %s", (option, setting) => {
    const message = refusal({ MONGODB_URL: `mongodb://a:27017,b:27017/?replicaSet=rs0&${option}` });
    expect(message).toMatch(new RegExp(`^ {2}MONGODB_URL: sets ${option} but ${setting} is `, "m"));
  });

  it.each(["readPreference=secondaryPreferred", "readPreference=nearest", "maxStalenessSeconds=90"])(
    "when the URL sends reads elsewhere than the primary (%s), then start-up stops naming MONGODB_URL",
    (option) => {
      expect(refusal({ MONGODB_URL: `mongodb://a:27017/?${option}` })).toMatch(
        new RegExp(`^ {2}MONGODB_URL: sets ${option} but roomkey reads from the primary only`, "m"),
      );
    },
  );

  it("when the URL repeats what the settings say (as Atlas's w=majority does), then it is accepted", () => {
    const url = "mongodb+srv://user:pass@cluster0.example.net/?retryWrites=true&w=majority&readPreference=primary";
    expect(loadConfig({ ...required, MONGODB_URL: url }).MONGODB_URL).toBe(url);
    const local = "mongodb://a:27017/?w=1&journal=false&readConcernLevel=local";
    const config = loadConfig({
      ...required,
      MONGODB_URL: local,
      ROOMKEY_MONGO_WRITE_CONCERN: "1",
      ROOMKEY_MONGO_JOURNAL: "false",
      ROOMKEY_MONGO_READ_CONCERN: "local",
    });
    expect(config.ROOMKEY_MONGO_WRITE_CONCERN).toBe(1);
  });
});

describe("createMongoClient", () => {
  it("when given the settings, then the client and every database it hands out carry them, reading from the primary", async () => {
    const config = loadConfig({
      ...required,
      ROOMKEY_MONGO_WRITE_CONCERN: "2",
      ROOMKEY_MONGO_WRITE_TIMEOUT_MS: "2500",
      ROOMKEY_MONGO_JOURNAL: "false",
      ROOMKEY_MONGO_READ_CONCERN: "local",
    });
    // The constructor does not connect: nothing here reaches a server.
    const client = createMongoClient("mongodb://127.0.0.1:9/", "roomkey-test", config);
    try {
      for (const holder of [client, client.db("roomkey_env_staging")]) {
        expect(holder.writeConcern).toMatchObject({ w: 2, wtimeoutMS: 2500, journal: false });
        expect(holder.readConcern?.level).toBe("local");
        expect(holder.readPreference?.mode).toBe("primary");
      }
    } finally {
      await client.close();
    }
  });
});
