"""A gRPC channel that sends roomkey's metadata on every call."""

from __future__ import annotations

import os
import re
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import grpc

ENV_ADDR = "ROOMKEY_ADDR"
ENV_ENVIRONMENT = "ROOMKEY_ENVIRONMENT"
ENV_TOKEN = "ROOMKEY_TOKEN"
DEFAULT_ADDR = "localhost:50051"


class _CallDetails(NamedTuple):
    method: str
    timeout: Optional[float]
    metadata: Optional[Sequence[Tuple[str, str]]]
    credentials: Optional[grpc.CallCredentials]
    wait_for_ready: Optional[bool]
    compression: Any


class _Metadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``roomkey-environment`` and ``authorization`` to every call."""

    def __init__(self, environment: str, token: str) -> None:
        self._pairs = (("roomkey-environment", environment), ("authorization", f"Bearer {token}"))

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        names = {name for name, _ in self._pairs}
        metadata = [(k, v) for k, v in (details.metadata or ()) if k not in names]
        return _CallDetails(
            details.method,
            details.timeout,
            [*metadata, *self._pairs],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def _intercept(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


def _target(addr: str) -> Tuple[str, bool]:
    secure = addr.startswith("https://")
    target = (addr.split("://", 1)[1] if "://" in addr else addr).rstrip("/")
    if secure and not re.search(r":[0-9]+$", target):
        target += ":443"
    if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):[0-9]+", target):
        raise ValueError(f"roomkey: address {addr!r}: want host:port, http://host:port or https://host[:port]")
    return target, secure


def connect(
    addr: Optional[str] = None,
    environment: Optional[str] = None,
    token: Optional[str] = None,
    options: Optional[Sequence[Tuple[str, Any]]] = None,
) -> grpc.Channel:
    """A channel on which every call carries the environment and the token.

    Arguments left out are read from ``ROOMKEY_ADDR`` (default
    ``localhost:50051``), ``ROOMKEY_ENVIRONMENT`` and ``ROOMKEY_TOKEN``. The
    address is ``host:port`` or ``http://host:port`` for plaintext, as roomkey
    serves it, or ``https://host[:port]`` for TLS. Pass the channel to the
    generated stubs in ``roomkey.v1``.
    """
    addr = addr or os.environ.get(ENV_ADDR) or DEFAULT_ADDR
    environment = environment or os.environ.get(ENV_ENVIRONMENT)
    token = token or os.environ.get(ENV_TOKEN)
    if not environment:
        raise ValueError(f"roomkey: no environment: pass environment= or set {ENV_ENVIRONMENT}")
    if not token:
        raise ValueError(f"roomkey: no token: pass token= or set {ENV_TOKEN}")
    target, secure = _target(addr)
    if secure:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, _Metadata(environment, token))
