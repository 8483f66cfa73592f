"""Verifies roomkey's webhook deliveries, signed per Standard Webhooks (https://www.standardwebhooks.com).

``webhook-signature`` carries one or more ``v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>``,
the key being the base64-decoded secret after its ``whsec_`` prefix. Standard library only: importing this
module needs neither grpc nor protobuf.

    verifier = WebhookVerifier(os.environ["ROOMKEY_WEBHOOK_SECRET"])
    event = verifier.verify(request.headers, request.body)  # raises WebhookVerificationError
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

WEBHOOK_ID_HEADER = "webhook-id"
"""The event's id, the same on every attempt and redelivery: deduplicate on it."""
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
"""When the attempt was signed, in unix seconds."""
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
"""One or more space-separated ``v1,<base64>`` signatures (two during a secret rotation)."""
DEFAULT_WEBHOOK_TOLERANCE = timedelta(minutes=5)
"""How far a delivery's timestamp may be from now, in the past or the future, by default."""

_SECRET_PREFIX = "whsec_"
# Digits only: a sign, spaces, underscores, a fraction or non-ASCII digits make the timestamp bad
# (``int()`` would take some of those), as in the Go and TypeScript clients.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class WebhookVerificationError(Exception):
    """A delivery that is not provably roomkey's, or is too old or too new to accept: answer it 4xx and drop it.

    ``reason`` is stable, for branching and logs: ``missing_header``, ``bad_timestamp``,
    ``timestamp_too_old``, ``timestamp_too_new`` or ``bad_signature``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"roomkey webhook: {message}")
        self.reason = reason


class WebhookVerifier:
    """Checks deliveries against one secret or several.

    A receiver in the middle of a rotation holds the new and the old secret; a delivery signed by either
    is accepted. Secrets are ``whsec_<base64>`` as ``CreateWebhookEndpoint`` returned them (the prefix may
    be left out); an empty or undecodable one raises ``ValueError`` here, as a configuration mistake.
    """

    def __init__(self, secrets: Union[str, Sequence[str]], tolerance: timedelta = DEFAULT_WEBHOOK_TOLERANCE) -> None:
        listed = [secrets] if isinstance(secrets, str) else list(secrets)
        if not listed:
            raise ValueError("roomkey webhook: no signing secret")
        if tolerance < timedelta(0):
            raise ValueError("roomkey webhook: tolerance must not be negative")
        self._keys = [_decode_secret(secret) for secret in listed]
        self._tolerance = tolerance.total_seconds()

    def verify(self, headers: Mapping[str, str], body: Union[bytes, str], now: Optional[datetime] = None) -> Dict[str, Any]:
        """Verifies one delivery and returns its parsed JSON body.

        The body is a ``roomkey.v1.WebhookEvent`` in the protobuf JSON mapping: decode it further with
        ``google.protobuf.json_format.ParseDict(event, webhooks_pb2.WebhookEvent(), ignore_unknown_fields=True)``
        if you use the generated messages. ``headers`` is any mapping (names matched case-insensitively);
        ``body`` must be the raw bytes as received, since JSON parsed and serialized again does not verify.
        ``now`` (timezone-aware) is for tests. Raises :class:`WebhookVerificationError` when the delivery is
        refused, and ``ValueError`` when a verified body is not a JSON object.
        """
        msg_id = _header(headers, WEBHOOK_ID_HEADER)
        timestamp = _header(headers, WEBHOOK_TIMESTAMP_HEADER)
        signatures = _header(headers, WEBHOOK_SIGNATURE_HEADER)
        if not _TIMESTAMP.fullmatch(timestamp):
            raise WebhookVerificationError("bad_timestamp", "webhook-timestamp is not an integer of unix seconds")
        if now is None:
            now = datetime.now(timezone.utc)
        elif now.tzinfo is None:
            raise ValueError("roomkey webhook: now must be timezone-aware")
        # Whole seconds on both sides, so that a timestamp exactly the tolerance away is accepted in every client.
        age = int(now.timestamp() // 1) - int(timestamp)
        if age > self._tolerance:
            raise WebhookVerificationError("timestamp_too_old", f"webhook-timestamp is {age} s old")
        if -age > self._tolerance:
            raise WebhookVerificationError("timestamp_too_new", f"webhook-timestamp is {-age} s in the future")
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        given: List[bytes] = []
        for entry in signatures.split(" "):
            version, _, value = entry.partition(",")
            if version != "v1":
                continue  # another version, such as v1a, or an empty entry
            try:
                given.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
        signed = f"{msg_id}.{timestamp}.".encode("utf-8") + raw
        for key in self._keys:
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            if any(hmac.compare_digest(signature, expected) for signature in given):
                event = json.loads(raw)
                if not isinstance(event, dict):
                    raise ValueError("roomkey webhook: the body is not a JSON object")
                return event
        raise WebhookVerificationError("bad_signature", "no v1 signature matches the signing secret")


def verify_webhook(
    secrets: Union[str, Sequence[str]],
    headers: Mapping[str, str],
    body: Union[bytes, str],
    tolerance: timedelta = DEFAULT_WEBHOOK_TOLERANCE,
    now: Optional[datetime] = None,
) -> Dict[str, Any]:
    """One-off form of ``WebhookVerifier(secrets, tolerance).verify(headers, body, now)``."""
    return WebhookVerifier(secrets, tolerance).verify(headers, body, now)


def _decode_secret(secret: str) -> bytes:
    encoded = secret[len(_SECRET_PREFIX) :] if secret.startswith(_SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        # The secret itself stays out of the message.
        raise ValueError(f"roomkey webhook: a signing secret is not {_SECRET_PREFIX}<base64>")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header's value whatever the case of its name (http.server's and most frameworks' mappings already
    ignore case; a plain dict does not)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise WebhookVerificationError("missing_header", f"no {name} header")
    return value
