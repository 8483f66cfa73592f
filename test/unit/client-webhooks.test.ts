import { createHmac, randomBytes } from "node:crypto";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  AccountStatus,
  verifyWebhook,
  WebhookEventSchema,
  type WebhookHeaders,
  WebhookVerificationError,
  WebhookVerifier,
} from "../../src/client/index.js";

// The Standard Webhooks reference vector (libraries/*/ tests of standard-webhooks/standard-webhooks).
const reference = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const otherSecret = `whsec_${randomBytes(32).toString("base64")}`;
const now = 1_790_000_000;
const clock = () => new Date(now * 1000);
const id = "evt_0Nm2bqZp8tQy4rW1xKs9Lf";
const body = JSON.stringify({
  id,
  type: "account.active",
  environment: "staging",
  timestamp: "2026-09-21T12:00:00Z",
  data: { account: { id: "acc_1", status: "ACCOUNT_STATUS_ACTIVE" }, previousStatus: "ACCOUNT_STATUS_CONNECTING" },
});

function sign(key: string, msgId: string, timestamp: number | string, payload: string): string {
  const raw = Buffer.from(key.replace(/^whsec_/, ""), "base64");
  return `v1,${createHmac("sha256", raw).update(`${msgId}.${timestamp}.${payload}`).digest("base64")}`;
}

function delivery(overrides: Partial<Record<string, string>> = {}, timestamp = now): Record<string, string> {
  const headers: Record<string, string> = {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": sign(secret, id, timestamp, body),
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete headers[name];
    else headers[name] = value;
  }
  return headers;
}

function refusal(verify: () => unknown): WebhookVerificationError {
  try {
    verify();
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error;
    throw error;
  }
  throw new Error("the delivery was accepted");
}

const verifier = new WebhookVerifier(secret, { now: clock });

describe("webhook verification (roomkey/client)", () => {
  it("when the Standard Webhooks reference vector is given, then it verifies and its body is returned", () => {
    const headers = {
      "webhook-id": reference.id,
      "webhook-timestamp": String(reference.timestamp),
      "webhook-signature": reference.signature,
    };
    const at = () => new Date(reference.timestamp * 1000);
    expect(new WebhookVerifier(reference.secret, { now: at }).verify(headers, reference.body)).toEqual({
      test: 2432232314,
    });
    // The same secret without its prefix.
    expect(new WebhookVerifier(reference.secret.slice(6), { now: at }).verify(headers, reference.body)).toEqual({
      test: 2432232314,
    });
  });

  it("when a delivery is signed with the secret, then its parsed body is returned", () => {
    expect(verifier.verify(delivery(), body)).toEqual(JSON.parse(body));
    expect(verifier.verify(delivery(), new TextEncoder().encode(body))).toEqual(JSON.parse(body));
  });

  it("when the headers come as fetch Headers, in another case or as arrays, then they are found", () => {
    expect(verifier.verify(new Headers(delivery()), body)).toMatchObject({ id });
    const upper = Object.fromEntries(Object.entries(delivery()).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifier.verify(upper, body)).toMatchObject({ id });
    const arrays: WebhookHeaders = {
      "webhook-id": [id],
      "webhook-timestamp": [String(now)],
      "webhook-signature": [sign(otherSecret, id, now, body), sign(secret, id, now, body)],
    };
    expect(verifier.verify(arrays, body)).toMatchObject({ id });
  });

  it.each([
    ["body", delivery(), `${body} `],
    ["id", delivery({ "webhook-id": "evt_other" }), body],
    ["timestamp", delivery({ "webhook-timestamp": String(now - 1) }), body],
  ])("when the %s is tampered with, then the signature does not match", (_, headers, payload) => {
    expect(refusal(() => verifier.verify(headers, payload)).reason).toBe("bad_signature");
  });

  it("when the delivery is signed with another secret, then it is refused", () => {
    const headers = delivery({ "webhook-signature": sign(otherSecret, id, now, body) });
    expect(refusal(() => verifier.verify(headers, body))).toMatchObject({
      reason: "bad_signature",
      message: "roomkey webhook: no v1 signature matches the signing secret",
    });
  });

  it("when two signatures come and only the second matches, then the delivery is accepted", () => {
    const headers = delivery({
      "webhook-signature": `${sign(otherSecret, id, now, body)} ${sign(secret, id, now, body)}`,
    });
    expect(verifier.verify(headers, body)).toMatchObject({ id });
  });

  it("when the receiver holds two secrets and the second signed, then the delivery is accepted", () => {
    const rotating = new WebhookVerifier([otherSecret, secret], { now: clock });
    expect(rotating.verify(delivery(), body)).toMatchObject({ id });
  });

  it("when the right signature comes as v1a, then it is ignored", () => {
    const value = sign(secret, id, now, body).slice(3);
    const headers = delivery({ "webhook-signature": `v1a,${value} v2,${value}` });
    expect(refusal(() => verifier.verify(headers, body)).reason).toBe("bad_signature");
  });

  it("when the timestamp is older than the tolerance, then it is refused; at the tolerance, accepted", () => {
    const old = now - 301;
    expect(refusal(() => verifier.verify(delivery({}, old), body))).toMatchObject({
      reason: "timestamp_too_old",
      message: "roomkey webhook: webhook-timestamp is 301 s old",
    });
    expect(verifier.verify(delivery({}, now - 300), body)).toMatchObject({ id });
    const lenient = new WebhookVerifier(secret, { now: clock, toleranceSeconds: 600 });
    expect(lenient.verify(delivery({}, old), body)).toMatchObject({ id });
  });

  it("when the timestamp is further in the future than the tolerance, then it is refused", () => {
    expect(refusal(() => verifier.verify(delivery({}, now + 301), body)).reason).toBe("timestamp_too_new");
    expect(verifier.verify(delivery({}, now + 300), body)).toMatchObject({ id });
  });

  it.each(["abc", "1.5", "-5", "+1790000000", " 1790000000", "1e9", ""])(
    "when the timestamp is %j, then it is a bad (or missing) timestamp",
    (value) => {
      const headers = delivery({ "webhook-timestamp": value, "webhook-signature": sign(secret, id, value, body) });
      expect(refusal(() => verifier.verify(headers, body)).reason).toBe(value ? "bad_timestamp" : "missing_header");
    },
  );

  it.each(["webhook-id", "webhook-timestamp", "webhook-signature"])(
    "when %s is missing, then the error names it",
    (name) => {
      expect(refusal(() => verifier.verify(delivery({ [name]: undefined }), body))).toMatchObject({
        reason: "missing_header",
        message: `roomkey webhook: no ${name} header`,
      });
    },
  );

  it("when a secret is not whsec_<base64>, then the verifier is not made, and the secret is not in the error", () => {
    for (const bad of ["whsec_", "", "whsec_not base64!", "whsec_abc"]) {
      expect(() => new WebhookVerifier(bad)).toThrow(/a signing secret is not whsec_<base64>$/);
    }
    expect(() => new WebhookVerifier([])).toThrow(/no signing secret/);
    expect(() => new WebhookVerifier(secret, { toleranceSeconds: -1 })).toThrow(/toleranceSeconds/);
  });

  it("when verifyWebhook is called, then it verifies as a verifier does", () => {
    expect(verifyWebhook([otherSecret, secret], delivery(), body, { now: clock })).toMatchObject({ id });
    expect(refusal(() => verifyWebhook(otherSecret, delivery(), body, { now: clock })).reason).toBe("bad_signature");
  });

  it("when the verified body is read with fromJson, then it is a WebhookEvent and unknown fields are ignored", () => {
    const payload = JSON.stringify({ ...JSON.parse(body), somethingNew: 1 });
    const json = verifier.verify(delivery({ "webhook-signature": sign(secret, id, now, payload) }), payload);
    const event = fromJson(WebhookEventSchema, json as JsonValue, { ignoreUnknownFields: true });
    expect(event.type).toBe("account.active");
    expect(event.data?.account?.status).toBe(AccountStatus.ACTIVE);
    expect(event.data?.previousStatus).toBe(AccountStatus.CONNECTING);
  });
});
