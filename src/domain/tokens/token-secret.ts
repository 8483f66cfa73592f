import { hash } from "node:crypto";
import { crc32 } from "node:zlib";
import { base62Fixed, base62Value, randomBase62 } from "../ids.js";

/**
 * 48 random base62 characters carry 285 bits, 262 of them beyond the four a
 * display prefix shows; then 6 characters of CRC32 checksum.
 */
const entropyLength = 48;
const checksumLength = 6;
/** Tested, never executed: every authenticated call passes here, so nothing is allocated for a match. */
const shape = /^rk_[a-z][a-z0-9-]{0,22}[a-z0-9]_[0-9A-Za-z]{54}$/;
const randomLength = entropyLength + checksumLength;

function checksum(body: string): string {
  return base62Fixed(crc32(body), checksumLength);
}

/** A new secret for an environment: `rk_<environment>_<48 random><6 checksum>`. */
export function generateSecret(environment: string): string {
  const body = `rk_${environment}_${randomBase62(entropyLength)}`;
  return body + checksum(body);
}

/** What a secret says about itself, before any lookup. */
export type SecretShape =
  | { kind: "token"; environment: string }
  | { kind: "malformed" }
  | { kind: "bad_checksum"; environment: string };

/**
 * Reads a secret's shape and checks its checksum (over the whole secret,
 * environment included), so typos and truncations are refused without a
 * database or Redis round trip.
 */
export function inspectSecret(secret: string): SecretShape {
  if (!shape.test(secret)) return { kind: "malformed" };
  const environment = secret.slice(3, secret.length - randomLength - 1);
  // Compared as numbers: no checksum string is built.
  const expected = base62Value(secret.slice(-checksumLength));
  if (crc32(secret.slice(0, -checksumLength)) !== expected) return { kind: "bad_checksum", environment };
  return { kind: "token", environment };
}

/** The stored form of a secret: its SHA-256, hex. Secrets carry 285 random bits: no salt or stretching needed. */
export function hashSecret(secret: string): string {
  return hash("sha256", secret, "hex");
}

/** The prefix shown in lists: the environment and four random characters (`rk_staging_a1B2…`). */
export function displayPrefix(secret: string, environment: string): string {
  return `${secret.slice(0, `rk_${environment}_`.length + 4)}…`;
}
