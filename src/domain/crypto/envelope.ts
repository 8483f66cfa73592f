import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import { RoomkeyError } from "../errors.js";

const algorithm = "aes-256-gcm";
const version = "v1";

/**
 * Additional authenticated data: binds a ciphertext to where it belongs, so a
 * ciphertext copied to another environment, record or field fails to open.
 */
export function bindingFor(environment: string, ...path: string[]): string {
  return ["roomkey", environment, ...path].join("\u0000");
}

/** The ciphertext failed authentication: wrong key, wrong binding or tampering. */
export class DecryptionError extends RoomkeyError {
  override readonly name = "DecryptionError";
  constructor() {
    super("failed_precondition", "DECRYPTION_FAILED", "stored ciphertext could not be decrypted");
  }
}

/**
 * AES-256-GCM with a random 96-bit nonce. Output: `v1.<nonce>.<tag>.<ciphertext>`
 * in base64url, safe to store as a string.
 */
export function seal(key: Buffer, plaintext: Buffer | string, binding: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv(algorithm, key, iv);
  cipher.setAAD(Buffer.from(binding, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return [version, iv, cipher.getAuthTag(), body]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

/** Opens what `seal` produced with the same key and binding, or throws DecryptionError. */
export function open(key: Buffer, sealed: string, binding: string): Buffer {
  const parts = sealed.split(".");
  const [v, iv, tag, body] = parts;
  if (parts.length !== 4 || v !== version || iv === undefined || tag === undefined || body === undefined) {
    throw new DecryptionError();
  }
  try {
    // A full 128-bit tag: Node would otherwise accept one as short as 32 bits.
    const decipher = createDecipheriv(algorithm, key, Buffer.from(iv, "base64url"), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(binding, "utf8"));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(body, "base64url")), decipher.final()]);
  } catch {
    throw new DecryptionError();
  }
}

/** A data key wrapped under the master key, as stored with its environment. */
export interface WrappedDataKey {
  /** `seal(masterKey, dataKey, binding)`. */
  wrapped: string;
  /** Which master key wrapped it: the first 16 hex digits of its SHA-256. */
  masterKeyId: string;
}

/** Envelope encryption: per-environment data keys wrapped by one master key. */
export interface Keyring {
  createDataKey(environment: string): { key: Buffer; wrapped: WrappedDataKey };
  unwrap(environment: string, wrapped: WrappedDataKey): Buffer;
}

export function createKeyring(masterKey: Buffer): Keyring {
  if (masterKey.length !== 32) throw new Error("the master key must be 32 bytes");
  const masterKeyId = createHash("sha256").update(masterKey).digest("hex").slice(0, 16);
  const binding = (environment: string) => bindingFor(environment, "data-key");
  return {
    createDataKey(environment) {
      const key = randomBytes(32);
      return { key, wrapped: { wrapped: seal(masterKey, key, binding(environment)), masterKeyId } };
    },
    unwrap(environment, wrapped) {
      if (wrapped.masterKeyId !== masterKeyId) {
        throw new RoomkeyError(
          "failed_precondition",
          "MASTER_KEY_MISMATCH",
          `the data key of ${environment} was wrapped by master key ${wrapped.masterKeyId}, not the configured one`,
        );
      }
      return open(masterKey, wrapped.wrapped, binding(environment));
    },
  };
}

/**
 * A 32-byte key for one purpose, derived from the master key with HKDF-SHA256
 * and a purpose label: the same on every replica that holds the master key,
 * secret like it, and of no use for any other purpose (a page-token MAC key
 * opens no data key). Changing the master key changes it too.
 */
export function derivePurposeKey(masterKey: Buffer, purpose: string): Buffer {
  if (masterKey.length !== 32) throw new Error("the master key must be 32 bytes");
  return Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), `roomkey/${purpose}`, 32));
}
