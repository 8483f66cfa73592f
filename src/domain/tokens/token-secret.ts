import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { base62Fixed, randomBase62 } from "../ids.js";

/** 44 base62 characters carry 261 bits; the last 6 are a CRC32 checksum. */
const entropyLength = 44;
const checksumLength = 6;
const shape = /^rk_([a-z][a-z0-9-]{0,22}[a-z0-9])_([0-9A-Za-z]{50})$/;

function checksum(body: string): string {
  return base62Fixed(crc32(body), checksumLength);
}

/** A new secret for an environment: `rk_<environment>_<44 random><6 checksum>`. */
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
  const match = shape.exec(secret);
  if (!match?.[1]) return { kind: "malformed" };
  const body = secret.slice(0, -checksumLength);
  if (checksum(body) !== secret.slice(-checksumLength)) return { kind: "bad_checksum", environment: match[1] };
  return { kind: "token", environment: match[1] };
}

/** The stored form of a secret: its SHA-256, hex. Secrets have 261 bits: no salt or stretching needed. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** The prefix shown in lists: the environment and four random characters (`rk_staging_a1B2…`). */
export function displayPrefix(secret: string, environment: string): string {
  return `${secret.slice(0, `rk_${environment}_`.length + 4)}…`;
}
