/**
 * Verifies roomkey's webhook deliveries, signed per Standard Webhooks
 * (https://www.standardwebhooks.com): `webhook-signature` carries one or more
 * `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`,
 * the key being the base64-decoded secret after its `whsec_` prefix.
 *
 *   const verifier = new WebhookVerifier(process.env.ROOMKEY_WEBHOOK_SECRET);
 *   const event = verifier.verify(req.headers, rawBody); // throws WebhookVerificationError
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Why a delivery was refused; stable, for branching and logs. */
export type WebhookVerificationReason =
  | "missing_header"
  | "bad_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "bad_signature";

/** A delivery that is not provably roomkey's, or is too old or too new to accept. Answer it 4xx and drop it. */
export class WebhookVerificationError extends Error {
  override readonly name = "WebhookVerificationError";
  constructor(
    readonly reason: WebhookVerificationReason,
    message: string,
  ) {
    super(`roomkey webhook: ${message}`);
  }
}

export interface WebhookVerifierOptions {
  /**
   * How far `webhook-timestamp` may be from now, in the past or the future,
   * in seconds. Default 300: a captured delivery cannot be replayed later
   * than that, and the receiver's clock may be off by that much.
   */
  toleranceSeconds?: number;
  /** The clock; for tests. */
  now?: () => Date;
}

/** Headers as `fetch` (`Headers`) or Node's `http` (`req.headers`) give them; names are matched case-insensitively. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** The default of `toleranceSeconds`, as the Standard Webhooks spec suggests. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

const SECRET_PREFIX = "whsec_";
const SIGNATURE_VERSION = "v1";
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// Digits only: a sign, spaces, a fraction or an exponent make the timestamp bad, as in the Go and Python clients.
const TIMESTAMP = /^[0-9]{1,15}$/;

/**
 * Checks deliveries against one secret or several: a receiver in the middle of
 * a rotation holds the new and the old one, and a delivery signed by either is
 * accepted.
 */
export class WebhookVerifier {
  readonly #keys: Buffer[];
  readonly #toleranceSeconds: number;
  readonly #now: () => Date;

  /** Throws when a secret is empty or not base64: a configuration mistake, not a bad delivery. */
  constructor(secrets: string | string[], options: WebhookVerifierOptions = {}) {
    const list = typeof secrets === "string" ? [secrets] : secrets;
    if (list.length === 0) throw new Error("roomkey webhook: no signing secret");
    this.#keys = list.map(decodeSecret);
    const tolerance = options.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
    if (!(tolerance >= 0)) throw new Error(`roomkey webhook: toleranceSeconds must be 0 or more, not ${tolerance}`);
    this.#toleranceSeconds = tolerance;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Verifies one delivery and returns its parsed JSON body (a
   * `roomkey.v1.WebhookEvent` in the protobuf JSON mapping). `body` must be
   * the raw bytes as received: JSON parsed and serialized again does not
   * verify. Throws `WebhookVerificationError` when the delivery is refused.
   */
  verify(headers: WebhookHeaders, body: string | Uint8Array): unknown {
    const id = header(headers, "webhook-id");
    const timestamp = header(headers, "webhook-timestamp");
    const signatures = header(headers, "webhook-signature");
    if (!TIMESTAMP.test(timestamp)) {
      throw new WebhookVerificationError("bad_timestamp", "webhook-timestamp is not an integer of unix seconds");
    }
    const age = Math.floor(this.#now().getTime() / 1000) - Number(timestamp);
    if (age > this.#toleranceSeconds) {
      throw new WebhookVerificationError("timestamp_too_old", `webhook-timestamp is ${age} s old`);
    }
    if (-age > this.#toleranceSeconds) {
      throw new WebhookVerificationError("timestamp_too_new", `webhook-timestamp is ${-age} s in the future`);
    }
    const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
    const given = signatures
      .split(" ")
      .filter((entry) => entry.startsWith(`${SIGNATURE_VERSION},`))
      .map((entry) => entry.slice(SIGNATURE_VERSION.length + 1))
      .filter((value) => BASE64.test(value))
      .map((value) => Buffer.from(value, "base64"));
    const matches = this.#keys.some((key) => {
      const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(bytes).digest();
      return given.some((signature) => signature.length === expected.length && timingSafeEqual(signature, expected));
    });
    if (!matches) throw new WebhookVerificationError("bad_signature", "no v1 signature matches the signing secret");
    return JSON.parse(bytes.toString("utf8"));
  }
}

/** One-off form of `new WebhookVerifier(secrets, options).verify(headers, body)`. */
export function verifyWebhook(
  secrets: string | string[],
  headers: WebhookHeaders,
  body: string | Uint8Array,
  options?: WebhookVerifierOptions,
): unknown {
  return new WebhookVerifier(secrets, options).verify(headers, body);
}

function decodeSecret(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (encoded === "" || !BASE64.test(encoded)) {
    // The secret itself stays out of the message.
    throw new Error(`roomkey webhook: a signing secret is not ${SECRET_PREFIX}<base64>`);
  }
  return Buffer.from(encoded, "base64");
}

/** A header's value; several values of webhook-signature are joined, of the others the first counts. */
function header(headers: WebhookHeaders, name: string): string {
  let value: string | string[] | null | undefined;
  if (headers instanceof Headers) {
    value = headers.get(name);
  } else {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  if (Array.isArray(value)) value = name === "webhook-signature" ? value.join(" ") : value[0];
  if (value === undefined || value === null || value === "") {
    throw new WebhookVerificationError("missing_header", `no ${name} header`);
  }
  return value;
}
