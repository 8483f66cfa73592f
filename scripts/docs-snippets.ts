/**
 * Keeps the code in docs/*.md identical to the scenario programs CI runs.
 * A fenced block right after `<!-- snippet: <file>#<name> -->` is replaced by
 * the lines between `snippet:<name>` and `end-snippet` in that file (comment
 * markers in any language), dedented. With --check it changes nothing and
 * fails when a block differs.
 *
 * Usage: tsx scripts/docs-snippets.ts <doc.md>... [--check]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const fence: Record<string, string> = { go: "go", py: "python", ts: "ts", sh: "bash" };

function region(file: string, name: string): string {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const start = lines.findIndex((line) => new RegExp(`(//|#) snippet:${name}$`).test(line.trim()));
  if (start < 0) throw new Error(`${file}: no snippet:${name}`);
  const end = lines.findIndex((line, i) => i > start && /(\/\/|#) end-snippet$/.test(line.trim()));
  if (end < 0) throw new Error(`${file}: snippet:${name} has no end-snippet`);
  const body = lines.slice(start + 1, end);
  const indent = Math.min(...body.filter((l) => l.trim() !== "").map((l) => (l.match(/^[\t ]*/)?.[0] ?? "").length));
  return body.map((l) => l.slice(indent)).join("\n");
}

export function render(markdown: string): string {
  return markdown.replace(
    /<!-- snippet: ([^#\s]+)#([\w-]+) -->\n```\w*\n(?:[\s\S]*?\n)??```(?!\w)/g,
    (_, file: string, name: string) => {
      const language = fence[file.split(".").pop() ?? ""] ?? "";
      return `<!-- snippet: ${file}#${name} -->\n\`\`\`${language}\n${region(file, name)}\n\`\`\``;
    },
  );
}

const args = process.argv.slice(2);
const check = args.includes("--check");
let stale = 0;
for (const doc of args.filter((arg) => arg !== "--check")) {
  const before = readFileSync(doc, "utf8");
  const after = render(before);
  if (before === after) continue;
  if (check) {
    console.error(`docs-snippets: ${doc} differs from the scenario programs; run npm run docs:snippets`);
    stale++;
  } else {
    writeFileSync(doc, after);
    console.log(`docs-snippets: updated ${doc}`);
  }
}
process.exit(stale > 0 ? 1 : 0);
