import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { inspectSecret } from "../../src/domain/tokens/token-secret.js";

const root = resolve(import.meta.dirname, "../..");
const documents = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

describe("example token secrets in the documentation", () => {
  // A reader pastes them: one that is malformed gives CREDENTIALS_INVALID instead of what the text shows.
  for (const document of documents) {
    it(`are well-formed in ${document}`, () => {
      const text = readFileSync(join(root, document), "utf8");
      // Whole secrets only: an abbreviated display prefix ends in "…".
      for (const [secret] of text.matchAll(/rk_[a-z0-9-]+_[A-Za-z0-9]{20,}(?!…)/g)) {
        expect(inspectSecret(secret), secret).toMatchObject({ kind: "token" });
      }
    });
  }
});
