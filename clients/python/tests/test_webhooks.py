"""Unit tests of roomkey.webhooks; standard library only: run with `python3 -m unittest tests.test_webhooks` from clients/python."""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import subprocess
import sys
import unittest
from datetime import datetime, timedelta, timezone

import roomkey
from roomkey.webhooks import WebhookVerificationError, WebhookVerifier, verify_webhook

# The Standard Webhooks reference vector (the tests of standard-webhooks/standard-webhooks' libraries).
REFERENCE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REFERENCE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REFERENCE_TIMESTAMP = 1614265330
REFERENCE_BODY = b'{"test": 2432232314}'
REFERENCE_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_790_000_000
AT_NOW = datetime.fromtimestamp(NOW, timezone.utc)
EVENT_ID = "evt_0Nm2bqZp8tQy4rW1xKs9Lf"
BODY = json.dumps(
    {
        "id": EVENT_ID,
        "type": "account.active",
        "environment": "staging",
        "timestamp": "2026-09-21T12:00:00Z",
        "data": {"account": {"id": "acc_1", "status": "ACCOUNT_STATUS_ACTIVE"}, "previousStatus": "ACCOUNT_STATUS_CONNECTING"},
    },
    separators=(",", ":"),
).encode()


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret[len("whsec_") :])
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


SECRET = new_secret()
OTHER_SECRET = new_secret()


def delivery(timestamp=NOW, **overrides):
    """Headers of a delivery of BODY signed with SECRET; an override of None drops the header."""
    headers = {
        "webhook-id": EVENT_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(SECRET, EVENT_ID, timestamp, BODY),
    }
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    return headers


class WebhookVerifierTest(unittest.TestCase):
    def setUp(self):
        self.verifier = WebhookVerifier(SECRET)

    def refusal(self, headers, body=BODY, verifier=None):
        with self.assertRaises(WebhookVerificationError) as caught:
            (verifier or self.verifier).verify(headers, body, now=AT_NOW)
        return caught.exception

    def test_the_standard_webhooks_reference_vector_verifies(self):
        headers = {
            "webhook-id": REFERENCE_ID,
            "webhook-timestamp": str(REFERENCE_TIMESTAMP),
            "webhook-signature": REFERENCE_SIGNATURE,
        }
        at = datetime.fromtimestamp(REFERENCE_TIMESTAMP, timezone.utc)
        for secret in (REFERENCE_SECRET, REFERENCE_SECRET[len("whsec_") :]):
            with self.subTest(prefixed=secret.startswith("whsec_")):
                self.assertEqual(WebhookVerifier(secret).verify(headers, REFERENCE_BODY, now=at), {"test": 2432232314})

    def test_a_signed_delivery_gives_its_parsed_body(self):
        self.assertEqual(self.verifier.verify(delivery(), BODY, now=AT_NOW), json.loads(BODY))
        self.assertEqual(self.verifier.verify(delivery(), BODY.decode(), now=AT_NOW)["id"], EVENT_ID)

    def test_header_names_are_matched_whatever_their_case(self):
        upper = {name.upper(): value for name, value in delivery().items()}
        self.assertEqual(self.verifier.verify(upper, BODY, now=AT_NOW)["id"], EVENT_ID)

    def test_a_tampered_body_id_or_timestamp_does_not_match(self):
        cases = {
            "body": (delivery(), BODY + b" "),
            "id": (delivery(webhook_id="evt_other"), BODY),
            "timestamp": (delivery(webhook_timestamp=str(NOW - 1)), BODY),
        }
        for name, (headers, body) in cases.items():
            with self.subTest(tampered=name):
                self.assertEqual(self.refusal(headers, body).reason, "bad_signature")

    def test_a_delivery_signed_with_another_secret_is_refused(self):
        error = self.refusal(delivery(webhook_signature=sign(OTHER_SECRET, EVENT_ID, NOW, BODY)))
        self.assertEqual(error.reason, "bad_signature")
        self.assertEqual(str(error), "roomkey webhook: no v1 signature matches the signing secret")

    def test_two_signatures_where_only_the_second_matches_are_accepted(self):
        both = f"{sign(OTHER_SECRET, EVENT_ID, NOW, BODY)} {sign(SECRET, EVENT_ID, NOW, BODY)}"
        self.assertEqual(self.verifier.verify(delivery(webhook_signature=both), BODY, now=AT_NOW)["id"], EVENT_ID)

    def test_a_receiver_holding_two_secrets_accepts_either(self):
        rotating = WebhookVerifier([OTHER_SECRET, SECRET])
        self.assertEqual(rotating.verify(delivery(), BODY, now=AT_NOW)["id"], EVENT_ID)

    def test_the_right_signature_as_v1a_is_ignored(self):
        value = sign(SECRET, EVENT_ID, NOW, BODY)[len("v1,") :]
        self.assertEqual(self.refusal(delivery(webhook_signature=f"v1a,{value} v2,{value}")).reason, "bad_signature")

    def test_a_timestamp_older_than_the_tolerance_is_refused(self):
        error = self.refusal(delivery(NOW - 301))
        self.assertEqual(error.reason, "timestamp_too_old")
        self.assertEqual(str(error), "roomkey webhook: webhook-timestamp is 301 s old")
        self.assertEqual(self.verifier.verify(delivery(NOW - 300), BODY, now=AT_NOW)["id"], EVENT_ID)
        lenient = WebhookVerifier(SECRET, tolerance=timedelta(minutes=10))
        self.assertEqual(lenient.verify(delivery(NOW - 301), BODY, now=AT_NOW)["id"], EVENT_ID)

    def test_a_timestamp_further_in_the_future_than_the_tolerance_is_refused(self):
        self.assertEqual(self.refusal(delivery(NOW + 301)).reason, "timestamp_too_new")
        self.assertEqual(self.verifier.verify(delivery(NOW + 300), BODY, now=AT_NOW)["id"], EVENT_ID)

    def test_a_timestamp_that_is_not_digits_is_bad(self):
        for value in ("abc", "1.5", "-5", "+1790000000", " 1790000000", "1_790_000_000", "1e9", "\u0661\u0662"):
            with self.subTest(timestamp=value):
                headers = delivery(webhook_timestamp=value, webhook_signature=sign(SECRET, EVENT_ID, value, BODY))
                self.assertEqual(self.refusal(headers).reason, "bad_timestamp")

    def test_a_missing_header_is_named(self):
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            with self.subTest(header=name):
                error = self.refusal(delivery(**{name: None}))
                self.assertEqual(error.reason, "missing_header")
                self.assertEqual(str(error), f"roomkey webhook: no {name} header")

    def test_a_bad_secret_is_refused_at_construction_without_showing_it(self):
        for secret in ("whsec_", "", "whsec_not base64!", "whsec_abc", "whsec_MfKQ9r8GKYqrTwjU\nPD8ILPZIo2LaLaSw"):
            with self.subTest(secret=secret):
                with self.assertRaisesRegex(ValueError, r"^roomkey webhook: a signing secret is not whsec_<base64>$"):
                    WebhookVerifier(secret)
        with self.assertRaises(ValueError):
            WebhookVerifier([])

    def test_a_naive_now_is_refused(self):
        with self.assertRaises(ValueError):
            self.verifier.verify(delivery(), BODY, now=datetime(2026, 9, 21))

    def test_verify_webhook_verifies_as_a_verifier_does(self):
        self.assertEqual(verify_webhook([OTHER_SECRET, SECRET], delivery(), BODY, now=AT_NOW)["id"], EVENT_ID)
        with self.assertRaises(WebhookVerificationError):
            verify_webhook(OTHER_SECRET, delivery(), BODY, now=AT_NOW)

    def test_the_package_exports_the_verifier(self):
        self.assertIs(roomkey.WebhookVerifier, WebhookVerifier)
        self.assertIs(roomkey.WebhookVerificationError, WebhookVerificationError)

    def test_importing_roomkey_for_webhooks_needs_neither_grpc_nor_protobuf(self):
        code = "import sys, roomkey; roomkey.WebhookVerifier; print(sorted(m for m in sys.modules if m.startswith(('grpc', 'google'))))"
        root = pathlib.Path(__file__).resolve().parents[1]
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]")


if __name__ == "__main__":
    unittest.main()
