import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, masterKeysOf } from "../../src/config.js";

const required = {
  ROOMKEY_ADMIN_KEY: "a".repeat(32),
  ROOMKEY_MASTER_KEY: Buffer.alloc(32, 7).toString("base64"),
};

describe("ROOMKEY_OUTBOUND_ALLOW", () => {
  it("when it is not set, then nothing is allowed (production-safe)", () => {
    expect(loadConfig(required).ROOMKEY_OUTBOUND_ALLOW).toEqual([]);
  });

  it("when it lists hostnames, addresses and CIDR blocks, then each is kept, trimmed", () => {
    const config = loadConfig({ ...required, ROOMKEY_OUTBOUND_ALLOW: " localhost, 127.0.0.0/8 ,::1,,mock-provider " });
    expect(config.ROOMKEY_OUTBOUND_ALLOW).toEqual(["localhost", "127.0.0.0/8", "::1", "mock-provider"]);
  });

  it.each(["10.0.0.0/33", "http://localhost", "*.example.com"])(
    "when it holds %j, then start-up stops naming the variable",
    (entry) => {
      const error = (() => {
        try {
          loadConfig({ ...required, ROOMKEY_OUTBOUND_ALLOW: `127.0.0.1,${entry}` });
        } catch (caught) {
          return caught;
        }
        throw new Error("the configuration was accepted");
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(
        "ROOMKEY_OUTBOUND_ALLOW: must be hostnames, IP addresses or CIDR blocks",
      );
    },
  );
});

describe("ROOMKEY_METRICS_PORT and ROOMKEY_DASHBOARD", () => {
  it("when they are not set, then metrics are on 9464 and the dashboard is read-only", () => {
    const config = loadConfig(required);
    expect(config.ROOMKEY_METRICS_PORT).toBe(9464);
    expect(config.ROOMKEY_DASHBOARD).toBe("read-only");
  });

  it("when the metrics port is off or a number, then it is taken", () => {
    expect(loadConfig({ ...required, ROOMKEY_METRICS_PORT: "off" }).ROOMKEY_METRICS_PORT).toBe("off");
    expect(loadConfig({ ...required, ROOMKEY_METRICS_PORT: "0" }).ROOMKEY_METRICS_PORT).toBe(0);
    expect(loadConfig({ ...required, ROOMKEY_DASHBOARD: "retry-clean" }).ROOMKEY_DASHBOARD).toBe("retry-clean");
  });

  it.each([
    ["ROOMKEY_METRICS_PORT", "70000"],
    ["ROOMKEY_METRICS_PORT", "no"],
    ["ROOMKEY_METRICS_PORT", ""],
    ["ROOMKEY_DASHBOARD", "read-write"],
  ])("when %s is %j, then start-up stops naming it", (name, value) => {
    expect(() => loadConfig({ ...required, [name]: value })).toThrow(new RegExp(`${name}: `));
  });
});

describe("master keys", () => {
  const { ROOMKEY_MASTER_KEY: single, ...withoutKey } = required;
  const keyA = Buffer.alloc(32, 1).toString("base64");
  const keyB = Buffer.alloc(32, 2).toString("base64");

  function failure(env: Record<string, string>): string {
    try {
      loadConfig({ ...withoutKey, ...env });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("the configuration was accepted");
  }

  it("when ROOMKEY_MASTER_KEY is set alone, then it is the one key, current, with the id default", () => {
    const keys = masterKeysOf(loadConfig(required));
    expect(keys.currentId).toBe("default");
    expect(keys.keys).toEqual([{ id: "default", key: Buffer.from(single, "base64") }]);
  });

  it("when ROOMKEY_MASTER_KEYS lists two keys and ROOMKEY_MASTER_KEY_ID names one, then that one is current and first", () => {
    const config = loadConfig({
      ...withoutKey,
      ROOMKEY_MASTER_KEYS: ` a:${keyA} , key-2026.b:${keyB}`,
      ROOMKEY_MASTER_KEY_ID: "key-2026.b",
    });
    const keys = masterKeysOf(config);
    expect(keys.currentId).toBe("key-2026.b");
    expect(keys.keys.map((k) => k.id)).toEqual(["key-2026.b", "a"]);
    expect(keys.keys[1]?.key).toEqual(Buffer.from(keyA, "base64"));
  });

  it("when ROOMKEY_MASTER_KEYS lists one key, then it is current without ROOMKEY_MASTER_KEY_ID", () => {
    expect(masterKeysOf(loadConfig({ ...withoutKey, ROOMKEY_MASTER_KEYS: `a:${keyA}` })).currentId).toBe("a");
  });

  it.each([
    [
      { ROOMKEY_MASTER_KEY: keyA, ROOMKEY_MASTER_KEYS: `a:${keyA}` },
      "ROOMKEY_MASTER_KEY and ROOMKEY_MASTER_KEYS are both set",
    ],
    [{}, "ROOMKEY_MASTER_KEY: is required (or ROOMKEY_MASTER_KEYS)"],
    [
      { ROOMKEY_MASTER_KEYS: `a:${keyA},b:${keyB}` },
      "ROOMKEY_MASTER_KEY_ID: is required when ROOMKEY_MASTER_KEYS lists more than one key",
    ],
    [
      { ROOMKEY_MASTER_KEYS: `a:${keyA},b:${keyB}`, ROOMKEY_MASTER_KEY_ID: "c" },
      'ROOMKEY_MASTER_KEY_ID: "c" is not one of the ids',
    ],
    [
      { ROOMKEY_MASTER_KEYS: `a:${keyA},a:${keyB}`, ROOMKEY_MASTER_KEY_ID: "a" },
      'ROOMKEY_MASTER_KEYS: the id "a" is given twice',
    ],
    [
      { ROOMKEY_MASTER_KEYS: `a:${keyA},b:${keyA}`, ROOMKEY_MASTER_KEY_ID: "a" },
      'ROOMKEY_MASTER_KEYS: "b" has the same key as "a"',
    ],
    [{ ROOMKEY_MASTER_KEYS: `-a:${keyA}` }, "ROOMKEY_MASTER_KEYS: entry 1 must be <id>:<base64 of 32 bytes>"],
    [{ ROOMKEY_MASTER_KEYS: keyA }, "ROOMKEY_MASTER_KEYS: entry 1 must be <id>:<base64 of 32 bytes>"],
    [
      { ROOMKEY_MASTER_KEYS: `a:${keyA},b:c2hvcnQ=`, ROOMKEY_MASTER_KEY_ID: "a" },
      'ROOMKEY_MASTER_KEYS: the key of "b" must be 32 bytes in base64',
    ],
    [
      { ROOMKEY_MASTER_KEY: keyA, ROOMKEY_MASTER_KEY_ID: "b" },
      'ROOMKEY_MASTER_KEY_ID: is "b" but ROOMKEY_MASTER_KEY\'s key is "default"',
    ],
    [{ ROOMKEY_MASTER_KEYS: `a:${keyA}`, ROOMKEY_MASTER_KEY_ID: "a b" }, "ROOMKEY_MASTER_KEY_ID: must match"],
  ])("when the keys are %j, then start-up stops naming the variable and never shows a key", (env, expected) => {
    const message = failure(env);
    expect(message).toContain(expected);
    for (const key of [keyA, keyB, "c2hvcnQ="]) expect(message).not.toContain(key);
  });

  it("when ROOMKEY_MASTER_KEY is empty and ROOMKEY_MASTER_KEYS is set, then the empty one counts as not set", () => {
    expect(
      masterKeysOf(loadConfig({ ...withoutKey, ROOMKEY_MASTER_KEY: "", ROOMKEY_MASTER_KEYS: `a:${keyA}` })).currentId,
    ).toBe("a");
  });
});
