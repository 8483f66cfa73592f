import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

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
