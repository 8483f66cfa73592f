"""The Python client of roomkey.

The generated stubs live in ``roomkey.v1`` (``token_service_pb2_grpc.TokenServiceStub``
and the others). This package adds only what every call needs: :func:`connect`,
a channel that sends ``roomkey-environment`` and ``authorization`` on every call,
and :func:`error_of`, which reads an error's reason, metadata and field violations.

    channel = roomkey.connect(environment="staging", token=secret)
    tokens = token_service_pb2_grpc.TokenServiceStub(channel)
"""

from roomkey.client import DEFAULT_ADDR, ENV_ADDR, ENV_ENVIRONMENT, ENV_TOKEN, connect, parse_addr
from roomkey.errors import ERROR_DOMAIN, RoomkeyError, error_of

__all__ = [
    "DEFAULT_ADDR",
    "ENV_ADDR",
    "ENV_ENVIRONMENT",
    "ENV_TOKEN",
    "ERROR_DOMAIN",
    "RoomkeyError",
    "connect",
    "error_of",
    "parse_addr",
]
