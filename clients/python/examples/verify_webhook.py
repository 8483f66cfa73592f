"""Verifies webhook deliveries with roomkey.WebhookVerifier, as a receiver does; test/integration runs it
on deliveries that roomkey made. Standard library only (no grpc needed). It reads from stdin

    {"secrets": ["whsec_..."], "deliveries": [{"headers": {"webhook-id": "...", ...}, "body": "<raw body>"}]}

and prints one line per delivery, in order: ``ok <webhook-id> <event type>`` or ``refused <reason>``
(missing_header, bad_timestamp, timestamp_too_old, timestamp_too_new, bad_signature; bad_body for a body
that verifies but is not a JSON object). Exit status 0 once the input was read, 2 when it could not be.
"""

import json
import sys

import roomkey


def main() -> int:
    try:
        given = json.load(sys.stdin)
        verifier = roomkey.WebhookVerifier(given["secrets"])
        deliveries = [(dict(d["headers"]), d["body"]) for d in given["deliveries"]]
        if not all(isinstance(body, str) for _, body in deliveries):
            raise TypeError("a body is not a string")
    except (ValueError, KeyError, TypeError) as error:
        print(f"verify_webhook: reading stdin: {error}", file=sys.stderr)
        return 2
    for headers, body in deliveries:
        try:
            event = verifier.verify(headers, body.encode("utf-8"))
        except roomkey.WebhookVerificationError as refusal:
            print("refused", refusal.reason)
            continue
        except ValueError:
            print("refused bad_body")
            continue
        webhook_id = next(value for name, value in headers.items() if name.lower() == roomkey.WEBHOOK_ID_HEADER)
        print("ok", webhook_id, event.get("type", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
