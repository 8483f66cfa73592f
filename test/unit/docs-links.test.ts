import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

/** Every relative link in the README and docs/ points at a file that exists, and at a heading that exists. */
const root = resolve(import.meta.dirname, "../..");
const documents = ["README.md", "CHANGELOG.md", ...readdirSync(join(root, "docs")).map((f) => `docs/${f}`)].filter(
  (f) => f.endsWith(".md"),
);

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, "")
    .replace(/ /g, "-");
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  const found = new Set<string>();
  for (const match of text.matchAll(/^#{1,6} (.+)$/gm)) found.add(slug(match[1] ?? ""));
  for (const match of text.matchAll(/<a name="([^"]+)"/g)) found.add(match[1] ?? "");
  return found;
}

describe("the documentation's links", () => {
  it.each(documents)("when %s links to a file or a heading, then it exists", (document) => {
    const path = join(root, document);
    const text = readFileSync(path, "utf8").replace(/```[\s\S]*?```/g, "");
    const broken: string[] = [];
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = match[1] ?? "";
      if (/^(https?:|mailto:)/.test(link)) continue;
      const [target = "", anchor] = link.split("#");
      const file = target === "" ? path : resolve(dirname(path), target);
      if (!existsSync(file)) {
        broken.push(`${link} (no such file)`);
        continue;
      }
      if (anchor !== undefined && file.endsWith(".md") && !anchorsOf(file).has(anchor)) {
        broken.push(`${link} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});
