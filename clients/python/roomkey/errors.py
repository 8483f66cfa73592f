"""Reads roomkey's errors: the stable reason, its metadata and field violations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from roomkey.v1 import error_reason_pb2

ERROR_DOMAIN = "roomkey.dev"
_DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class RoomkeyError:
    """A roomkey error as a caller branches on it."""

    code: grpc.StatusCode
    """The gRPC status code."""
    message: str
    """The status message, for people; do not branch on it."""
    reason: int = error_reason_pb2.ERROR_REASON_UNSPECIFIED
    """An ``error_reason_pb2.ErrorReason`` value, such as
    ``ERROR_REASON_TOKEN_WRONG_ENVIRONMENT``; unspecified when the error did not
    come from roomkey (a connection failure, say) or carries a reason newer
    than this client (``reason_name`` still has it then)."""
    reason_name: str = ""
    """The reason as the server sent it in ErrorInfo, such as ``TOKEN_WRONG_ENVIRONMENT``; empty when there is none."""
    metadata: Dict[str, str] = field(default_factory=dict)
    """The ErrorInfo's metadata, such as ``token_environment``."""
    field_violations: List[error_details_pb2.BadRequest.FieldViolation] = field(default_factory=list)
    """The BadRequest detail's violations: which field (or metadata header) was wrong, and why."""


def error_of(error: BaseException) -> Optional[RoomkeyError]:
    """Reads a ``grpc.RpcError`` raised by a roomkey call; None for other exceptions."""
    if not isinstance(error, grpc.RpcError) or not isinstance(error, grpc.Call):
        return None
    out = RoomkeyError(code=error.code(), message=error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            # Not a google.rpc.Status (a proxy in between, say): the code and message still stand.
            continue
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                if info.domain != ERROR_DOMAIN:
                    continue
                known = error_reason_pb2.ErrorReason.DESCRIPTOR.values_by_name.get(f"ERROR_REASON_{info.reason}")
                out.reason = known.number if known and info.reason else error_reason_pb2.ERROR_REASON_UNSPECIFIED
                out.reason_name = info.reason
                out.metadata.update(info.metadata)
            elif detail.Unpack(bad_request):
                out.field_violations.extend(bad_request.field_violations)
    return out
