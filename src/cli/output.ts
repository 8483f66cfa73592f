import type { DescEnum } from "@bufbuild/protobuf";
import { type Duration, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { RoomkeyError } from "../client/index.js";
import { codeName } from "./errors.js";

/** What a table cell shows for an unset value. */
const unset = "-";
/** A list cell longer than this is cut, so that one provider's long status reason does not widen every row. */
const maxCellWidth = 60;

/**
 * Makes text safe to print on a terminal: control characters (a provider's
 * status reason or a tenant id could carry escape sequences) are shown
 * escaped instead of being interpreted.
 */
export function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function cut(text: string): string {
  return text.length > maxCellWidth ? `${text.slice(0, maxCellWidth - 1)}…` : text;
}

/** Columns padded to their widest cell, two spaces apart, with a header row. */
export function table(headers: string[], rows: string[][]): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => cut(printable(cell || unset))))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)));
  return cells
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** One resource, one `label  value` line per field, values in full. */
export function fields(pairs: [label: string, value: string][]): string {
  const width = Math.max(...pairs.map(([label]) => label.length));
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${printable(value || unset)}`).join("\n");
}

/** A timestamp in UTC to the second (`2026-11-28T00:42:56Z`), or empty when unset. */
export function time(timestamp: Timestamp | undefined): string {
  if (!timestamp) return "";
  return timestampDate(timestamp)
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z");
}

const units: [suffix: string, seconds: bigint][] = [
  ["d", 86_400n],
  ["h", 3_600n],
  ["m", 60n],
  ["s", 1n],
];

/** A duration as the flags take it (`30d`, `1h30m`, `0s`), or empty when unset. */
export function duration(value: Duration | undefined): string {
  if (!value) return "";
  let rest = value.seconds;
  let text = "";
  for (const [suffix, seconds] of units) {
    if (rest >= seconds) {
      text += `${rest / seconds}${suffix}`;
      rest %= seconds;
    }
  }
  if (value.nanos > 0) text += `${Math.round(value.nanos / 1e6)}ms`;
  return text || "0s";
}

/** An enum value by its short name (`ACTIVE` for `TOKEN_STATE_ACTIVE`); empty when unset, the number when unknown. */
export function enumName(schema: DescEnum, value: number): string {
  if (value === 0) return "";
  return schema.value[value]?.localName ?? String(value);
}

/** `yes` or `no`, for booleans in tables. */
export function yesNo(value: boolean): string {
  return value ? "yes" : "no";
}

/** Labels and other maps as `key=value, key=value`. */
export function pairs(map: Record<string, string>): string {
  return Object.entries(map)
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
}

/** A roomkey error for people: code, reason and message on the first line, then metadata and field violations. */
export function errorText(error: RoomkeyError): string {
  const head = [codeName(error.code), error.reasonName].filter(Boolean).join(" ");
  const lines = [`error: ${head}: ${printable(error.message)}`];
  for (const [key, value] of Object.entries(error.metadata)) lines.push(`  ${key}: ${printable(value)}`);
  for (const violation of error.fieldViolations) {
    lines.push(`  field ${printable(violation.field)}: ${printable(violation.description)}`);
  }
  return lines.join("\n");
}

/** A roomkey error for scripts (`--json`): one object, with the same names as the API's error details. */
export function errorJson(error: RoomkeyError): string {
  return JSON.stringify({
    error: {
      code: codeName(error.code),
      reason: error.reasonName,
      message: error.message,
      metadata: error.metadata,
      fieldViolations: error.fieldViolations.map(({ field, description }) => ({ field, description })),
    },
  });
}
