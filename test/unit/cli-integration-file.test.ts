import { describe, expect, it } from "vitest";
import { integrationFromText, withoutContent } from "../../src/cli/integration-file.js";

describe("integration files with mistakes", () => {
  const secret = "s3cr3t-client-secret";
  it.each([
    ["YAML that does not parse", "a.yaml", `name: x\noauth2:\n  clientSecret: "${secret}\n  tokenUrl: [`],
    ["JSON that does not parse", "a.json", `{"name": "x", "oauth2": {"clientSecret": "${secret}" x}}`],
    ["a secret where an enum goes", "a.yaml", `name: x\nauthType: ${secret}`],
    ["a secret of the wrong type", "a.json", `{"name": "x", "oauth2": {"clientSecret": 12345${secret.length}}}`],
  ])("%s: the error says where, never what the file holds", (_, where, text) => {
    const error = (() => {
      try {
        integrationFromText(text, where);
      } catch (caught) {
        return caught as Error;
      }
      throw new Error("the file was accepted");
    })();
    expect(error.message.startsWith(`${where}: `)).toBe(true);
    expect(error.message).not.toContain(secret);
    expect(error.message).not.toContain("12345");
  });

  it("keeps the position and the names of fields and keys", () => {
    expect(withoutContent('Missing closing "quote at line 3, column 7:\n\n  b: [\n      ^\n')).toBe(
      'Missing closing "quote at line 3, column 7',
    );
    expect(withoutContent('cannot decode message roomkey.v1.Integration from JSON: key "nmae" is unknown')).toBe(
      'cannot decode message roomkey.v1.Integration from JSON: key "nmae" is unknown',
    );
    expect(withoutContent(`Unexpected token 'x', "{"a": "b" x}" is not valid JSON`)).toBe(
      "Unexpected token 'x' (not valid JSON)",
    );
  });
});
