import type { DescEnum } from "@bufbuild/protobuf";
import { InvalidArgumentError, Option } from "commander";

/**
 * Parsers for flag values. Each throws commander's InvalidArgumentError, which
 * commander prints naming the flag (`option '--ttl <duration>' argument '3x'
 * is invalid. …`) and which the CLI turns into a usage error (exit 2).
 *
 * They check the form only; what the API decides (the scopes there are, the
 * longest ttl) the API checks and names the field, so no rule lives twice.
 */

const unitSeconds: Record<string, bigint> = { s: 1n, m: 60n, h: 3_600n, d: 86_400n, w: 604_800n };
/** The largest google.protobuf.Duration (10,000 years). */
const maxDurationSeconds = 315_576_000_000n;

/** `90s`, `15m`, `12h`, `30d`, `2w`, or a sum such as `1h30m`; `0` alone is zero. */
export function parseDuration(text: string): { seconds: bigint } {
  const bad = () =>
    new InvalidArgumentError("Use a number and a unit (s, m, h, d, w), such as 90s, 15m, 12h, 30d or 1h30m.");
  if (text === "0") return { seconds: 0n };
  if (!/^(\d+[smhdw])+$/.test(text)) throw bad();
  let seconds = 0n;
  for (const [, amount, unit] of text.matchAll(/(\d+)([smhdw])/g)) {
    seconds += BigInt(amount ?? "0") * (unitSeconds[unit ?? ""] ?? 0n);
  }
  if (seconds > maxDurationSeconds) throw new InvalidArgumentError("That is longer than any duration the API takes.");
  return { seconds };
}

/** A page size from 1 to 100 (the API reads 0 as its default, 50, and 100 is its most). */
export function parsePageSize(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 100) {
    throw new InvalidArgumentError("Use a whole number from 1 to 100.");
  }
  return Number(text);
}

/** For a flag given several times: `--scope a --scope b`. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** For `--label key=value`, given several times. */
export function collectLabel(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf("=");
  if (at < 1) throw new InvalidArgumentError("Use key=value, such as --label team=billing.");
  const key = value.slice(0, at);
  if (Object.hasOwn(previous, key)) throw new InvalidArgumentError(`The label ${key} is given twice.`);
  return { ...previous, [key]: value.slice(at + 1) };
}

/**
 * An option whose value is one of an API enum's values, written in lower case
 * without the enum's prefix (`--state revoked` for TOKEN_STATE_REVOKED); the
 * full name is accepted too. Its parsed value is the enum number.
 */
export function enumOption(flags: string, description: string, schema: DescEnum): Option {
  const values = schema.values.filter((value) => value.number !== 0);
  const choices = values.map((value) => value.localName.toLowerCase());
  return new Option(flags, description).choices(choices).argParser((text: string) => {
    const found = values.find((value) => value.localName.toLowerCase() === text.toLowerCase() || value.name === text);
    if (!found) throw new InvalidArgumentError(`Use one of: ${choices.join(", ")}.`);
    return found.number;
  });
}
