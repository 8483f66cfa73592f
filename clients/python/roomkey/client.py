"""A gRPC channel that sends roomkey's metadata on every call."""

from __future__ import annotations

import os
from urllib.parse import urlsplit
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
    """Adds ``roomkey-environment`` and ``authorization`` to every call that does not set its own."""

    def __init__(self, environment: str, token: str) -> None:
        self._pairs = (("roomkey-environment", environment), ("authorization", f"Bearer {token}"))

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        own = {name for name, _ in metadata}
        return _CallDetails(
            details.method,
            details.timeout,
            [*metadata, *((k, v) for k, v in self._pairs if k not in own)],
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


def parse_addr(addr: str) -> Tuple[str, bool]:
    """Reads an address as :func:`connect` does.

    ``host:port`` or ``http://host:port`` is plaintext, ``https://host[:port]``
    TLS (port 443 if left out). Returns the gRPC target and whether to use TLS;
    anything else (another scheme, a path, a query, user info, a missing or bad
    port) raises ValueError.
    """
    bad = ValueError(f"roomkey: address {addr!r}: want host:port, http://host:port or https://host[:port]")
    parts = urlsplit(addr if "://" in addr else f"//{addr}")
    if parts.scheme not in ("", "http", "https") or ("://" in addr) != (parts.scheme != ""):
        raise bad
    secure = parts.scheme == "https"
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment or "?" in addr:
        raise bad
    try:
        port = parts.port
    except ValueError:
        raise bad from None
    if port is None:
        if not secure or parts.netloc.endswith(":"):
            raise bad
        port = 443
    host = parts.hostname
    if not host or port < 1:
        raise bad
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), secure


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
    generated stubs in ``roomkey.v1``. A call that passes its own
    ``roomkey-environment`` or ``authorization`` metadata keeps it, so one
    channel can act on several environments.
    """
    addr = addr or os.environ.get(ENV_ADDR) or DEFAULT_ADDR
    environment = environment or os.environ.get(ENV_ENVIRONMENT)
    token = token or os.environ.get(ENV_TOKEN)
    if not environment:
        raise ValueError(f"roomkey: no environment: pass environment= or set {ENV_ENVIRONMENT}")
    if not token:
        raise ValueError(f"roomkey: no token: pass token= or set {ENV_TOKEN}")
    target, secure = parse_addr(addr)
    if secure:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, _Metadata(environment, token))
