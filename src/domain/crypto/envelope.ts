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

/** The fingerprint a data key records of the master key that wraps it: the first 16 hex digits of its SHA-256. */
export function fingerprintOf(masterKey: Buffer): string {
  return createHash("sha256").update(masterKey).digest("hex").slice(0, 16);
}

/** A master key as the keyring shows it: never its bytes. */
export interface MasterKeyInfo {
  id: string;
  fingerprint: string;
  current: boolean;
}

/** One master key given to the keyring: an operator's id and its 32 bytes. */
export interface NamedMasterKey {
  id: string;
  key: Buffer;
}

/**
 * Envelope encryption: per-environment data keys wrapped by master keys. New
 * data keys are wrapped under the current one; a data key wrapped under any
 * configured one opens (the key is picked by the fingerprint it records).
 */
export interface Keyring {
  createDataKey(environment: string): { key: Buffer; wrapped: WrappedDataKey };
  unwrap(environment: string, wrapped: WrappedDataKey): Buffer;
  /**
   * The same data key wrapped under the current master key (what is sealed
   * under the data key stays as it is); MASTER_KEY_MISMATCH when this keyring
   * lacks the key that wraps it now.
   */
  rewrap(environment: string, wrapped: WrappedDataKey): WrappedDataKey;
  /** The current master key. */
  readonly current: MasterKeyInfo;
  /** Every configured master key, the current one first. */
  readonly keys: readonly MasterKeyInfo[];
  /** Whether this keyring holds the master key of that fingerprint. */
  has(fingerprint: string): boolean;
}

/** A keyring of one master key (id `default`), or of several with the current one named. */
export function createKeyring(masterKeys: Buffer | { currentId: string; keys: readonly NamedMasterKey[] }): Keyring {
  const given = Buffer.isBuffer(masterKeys)
    ? { currentId: "default", keys: [{ id: "default", key: masterKeys }] }
    : masterKeys;
  const byFingerprint = new Map<string, { id: string; key: Buffer }>();
  for (const { id, key } of given.keys) {
    if (key.length !== 32) throw new Error("the master key must be 32 bytes");
    const fingerprint = fingerprintOf(key);
    if (byFingerprint.has(fingerprint)) throw new Error(`the master key ${id} is given twice`);
    byFingerprint.set(fingerprint, { id, key });
  }
  const infos: MasterKeyInfo[] = [...byFingerprint].map(([fingerprint, { id }]) => ({
    id,
    fingerprint,
    current: id === given.currentId,
  }));
  const found = infos.find((info) => info.current);
  const foundKey = found && byFingerprint.get(found.fingerprint)?.key;
  if (!found || !foundKey) throw new Error(`the current master key ${given.currentId} is not among the keys`);
  const current: MasterKeyInfo = found;
  const currentKey: Buffer = foundKey;
  const keys = [current, ...infos.filter((info) => !info.current)];
  const binding = (environment: string) => bindingFor(environment, "data-key");

  function masterKeyFor(environment: string, wrapped: WrappedDataKey): Buffer {
    const found = byFingerprint.get(wrapped.masterKeyId);
    if (!found) {
      throw new RoomkeyError(
        "failed_precondition",
        "MASTER_KEY_MISMATCH",
        `the data key of ${environment} was wrapped by master key ${wrapped.masterKeyId}, which is not configured`,
      );
    }
    return found.key;
  }

  function wrap(environment: string, key: Buffer): WrappedDataKey {
    return { wrapped: seal(currentKey, key, binding(environment)), masterKeyId: current.fingerprint };
  }

  function unwrap(environment: string, wrapped: WrappedDataKey): Buffer {
    return open(masterKeyFor(environment, wrapped), wrapped.wrapped, binding(environment));
  }

  return {
    createDataKey(environment) {
      const key = randomBytes(32);
      return { key, wrapped: wrap(environment, key) };
    },
    unwrap,
    rewrap(environment, wrapped) {
      return wrap(environment, unwrap(environment, wrapped));
    },
    current,
    keys,
    has: (fingerprint) => byFingerprint.has(fingerprint),
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
