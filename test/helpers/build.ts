import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** True when `file` (a build output in dist/) is missing or older than a file under `sources`. */
export function builtBefore(file: string, sources: string[]): boolean {
  let built: number;
  try {
    built = statSync(file).mtimeMs;
  } catch {
    return true;
  }
  return sources.some((dir) =>
    readdirSync(dir, { recursive: true, withFileTypes: true }).some(
      (entry) => entry.isFile() && statSync(join(entry.parentPath, entry.name)).mtimeMs > built,
    ),
  );
}
