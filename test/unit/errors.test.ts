import { Code } from "@connectrpc/connect";
import { MongoServerError } from "mongodb";
import { describe, expect, it } from "vitest";
import { codeOf, toConnectError } from "../../src/rpc/errors.js";
import { capturedLogger } from "../helpers/server.js";

describe("errors as statuses", () => {
  it("when the environment's database is dropped during a call (NamespaceNotFound), then NOT_FOUND, not INTERNAL, and no error is logged", () => {
    const { logger, lines } = capturedLogger("info");
    const dropped = new MongoServerError({ message: "ns does not exist: x_env_fuzz.token_usage", code: 26 });
    const status = toConnectError(dropped, logger);
    expect(status.code).toBe(Code.NotFound);
    expect(codeOf(dropped)).toBe(Code.NotFound);
    expect(status.rawMessage).toBe("the environment was deleted while the call ran");
    expect(status.rawMessage).not.toContain("x_env_fuzz");
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  it("when an error is unexpected, then INTERNAL without its message, and it is logged", () => {
    const { logger, lines } = capturedLogger("info");
    const status = toConnectError(new MongoServerError({ message: "something else", code: 2 }), logger);
    expect(status.code).toBe(Code.Internal);
    expect(status.rawMessage).toBe("internal error");
    expect(lines.filter((l) => l.level >= 50)).toHaveLength(1);
  });
});
