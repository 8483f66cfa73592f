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
