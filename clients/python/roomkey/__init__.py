"""The Python client of roomkey.

The generated stubs live in ``roomkey.v1`` (``token_service_pb2_grpc.TokenServiceStub``
and the others). This package adds only what every call needs: :func:`connect`,
a channel that sends ``roomkey-environment`` and ``authorization`` on every call,
and :func:`error_of`, which reads an error's reason, metadata and field violations.

    channel = roomkey.connect(environment="staging", token=secret)
    tokens = token_service_pb2_grpc.TokenServiceStub(channel)

And for webhook receivers, :class:`WebhookVerifier` (``roomkey.webhooks``), which needs
only the standard library: the names that need grpc and google.rpc are imported on
first use, so a receiver without them can still ``import roomkey``.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from roomkey.webhooks import (
    DEFAULT_WEBHOOK_TOLERANCE,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    WebhookVerificationError,
    WebhookVerifier,
    verify_webhook,
)

if TYPE_CHECKING:
    from roomkey.client import DEFAULT_ADDR, ENV_ADDR, ENV_ENVIRONMENT, ENV_TOKEN, connect, parse_addr
    from roomkey.errors import ERROR_DOMAIN, RoomkeyError, error_of

_LAZY = {
    "DEFAULT_ADDR": "roomkey.client",
    "ENV_ADDR": "roomkey.client",
    "ENV_ENVIRONMENT": "roomkey.client",
    "ENV_TOKEN": "roomkey.client",
    "connect": "roomkey.client",
    "parse_addr": "roomkey.client",
    "ERROR_DOMAIN": "roomkey.errors",
    "RoomkeyError": "roomkey.errors",
    "error_of": "roomkey.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roomkey' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ADDR",
    "DEFAULT_WEBHOOK_TOLERANCE",
    "ENV_ADDR",
    "ENV_ENVIRONMENT",
    "ENV_TOKEN",
    "ERROR_DOMAIN",
    "RoomkeyError",
    "WEBHOOK_ID_HEADER",
    "WEBHOOK_SIGNATURE_HEADER",
    "WEBHOOK_TIMESTAMP_HEADER",
    "WebhookVerificationError",
    "WebhookVerifier",
    "connect",
    "error_of",
    "parse_addr",
    "verify_webhook",
]
