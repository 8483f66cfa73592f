import { randomBytes } from "node:crypto";

/** Base62 in ASCII order, so fixed-width encodings sort like the numbers they encode. */
export const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `length` uniformly random base62 characters (rejection sampling, no modulo bias). */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: bytes above it would favour the first characters.
      if (byte < 248) out += base62Alphabet[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

const digitValues = new Map([...base62Alphabet].map((char, value) => [char.charCodeAt(0), value]));

/** The number that base62 `text` spells, or -1 if a character is not base62. */
export function base62Value(text: string): number {
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = digitValues.get(text.charCodeAt(i));
    if (digit === undefined) return -1;
    value = value * 62 + digit;
  }
  return value;
}

/** A non-negative integer as exactly `width` base62 characters. */
export function base62Fixed(value: number, width: number): string {
  let out = "";
  let rest = value;
  for (let i = 0; i < width; i++) {
    out = base62Alphabet[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  if (rest !== 0) throw new RangeError(`${value} does not fit in ${width} base62 characters`);
  return out;
}

/**
 * A resource id such as `tok_0Nm2bqZp8tQy4rW1xKs9Lf`: 8 characters of
 * millisecond time (ids sort by creation) and 14 random ones (83 bits).
 */
export function newId(prefix: "tok" | "acc" | "we" | "cs" | "ae", now: Date): string {
  return `${prefix}_${base62Fixed(now.getTime(), 8)}${randomBase62(14)}`;
}
