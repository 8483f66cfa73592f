import type { Io } from "./cli.js";
import { UsageError } from "./errors.js";

/**
 * A secret from its flag or argument, or from standard input when that is `-`
 * (`printf %s "$KEY" | roomkey account connect --api-key - …`), so that it
 * need not sit in the shell's history or the process list. One trailing line
 * break is dropped, as `echo` and files add one.
 */
export async function secretFrom(io: Io, given: string | undefined, name: string): Promise<string> {
  if (given !== undefined && given !== "-") return given;
  const text = (await io.stdin()).replace(/\r?\n$/, "");
  if (text === "") throw new UsageError(`${name}: standard input was empty`);
  if (/[\r\n]/.test(text)) throw new UsageError(`${name}: standard input holds more than one line`);
  return text;
}
