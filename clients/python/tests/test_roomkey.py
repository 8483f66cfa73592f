"""Unit tests of the hand-written layer; run with `python3 -m unittest discover -s tests` (google.rpc on the path)."""

import json
import pathlib
import unittest

import grpc
from google.rpc import error_details_pb2, status_pb2

import roomkey
from roomkey.client import _Metadata
from roomkey.v1 import error_reason_pb2

ADDRESSES = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "addresses.json"


class _Details:
    def __init__(self, metadata):
        self.method = "/roomkey.v1.TokenService/GetToken"
        self.timeout = None
        self.metadata = metadata
        self.credentials = None
        self.wait_for_ready = None
        self.compression = None


class _Error(grpc.RpcError, grpc.Call):
    def __init__(self, code, details, trailers):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


def _status(code, *details):
    status = status_pb2.Status(code=code.value[0], message="m")
    for detail in details:
        status.details.add().Pack(detail)
    return (("grpc-status-details-bin", status.SerializeToString()),)


class ParseAddrTest(unittest.TestCase):
    def test_the_shared_address_table(self):
        for case in json.loads(ADDRESSES.read_text()):
            with self.subTest(addr=case["addr"]):
                if case.get("error"):
                    with self.assertRaises(ValueError):
                        roomkey.parse_addr(case["addr"])
                else:
                    self.assertEqual(roomkey.parse_addr(case["addr"]), (case["target"], case["tls"]))


class MetadataTest(unittest.TestCase):
    def test_every_call_gets_the_environment_and_token_unless_it_sets_its_own(self):
        sent = []
        interceptor = _Metadata("staging", "rk_staging_x")
        interceptor.intercept_unary_unary(lambda details, request: sent.append(details.metadata), _Details(None), None)
        self.assertEqual(sent[0], [("roomkey-environment", "staging"), ("authorization", "Bearer rk_staging_x")])
        own = [("roomkey-environment", "qa")]
        interceptor.intercept_unary_stream(lambda details, request: sent.append(details.metadata), _Details(own), None)
        self.assertEqual(sent[1], [("roomkey-environment", "qa"), ("authorization", "Bearer rk_staging_x")])


class ErrorOfTest(unittest.TestCase):
    def test_reason_metadata_and_field_violations(self):
        info = error_details_pb2.ErrorInfo(reason="TOKEN_WRONG_ENVIRONMENT", domain="roomkey.dev", metadata={"k": "v"})
        bad = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field="name", description="bad")]
        )
        err = roomkey.error_of(_Error(grpc.StatusCode.PERMISSION_DENIED, "m", _status(grpc.StatusCode.PERMISSION_DENIED, info, bad)))
        self.assertEqual(err.reason, error_reason_pb2.ERROR_REASON_TOKEN_WRONG_ENVIRONMENT)
        self.assertEqual(err.reason_name, "TOKEN_WRONG_ENVIRONMENT")
        self.assertEqual(err.metadata, {"k": "v"})
        self.assertEqual([v.field for v in err.field_violations], ["name"])

    def test_a_reason_newer_than_the_client_is_kept_by_name(self):
        info = error_details_pb2.ErrorInfo(reason="SOMETHING_NEW", domain="roomkey.dev")
        err = roomkey.error_of(_Error(grpc.StatusCode.INTERNAL, "m", _status(grpc.StatusCode.INTERNAL, info)))
        self.assertEqual(err.reason, error_reason_pb2.ERROR_REASON_UNSPECIFIED)
        self.assertEqual(err.reason_name, "SOMETHING_NEW")

    def test_details_that_are_not_a_status_leave_the_code_and_message(self):
        err = roomkey.error_of(
            _Error(grpc.StatusCode.UNAVAILABLE, "proxy", (("grpc-status-details-bin", b"\xff\xff\xff"),))
        )
        self.assertEqual((err.code, err.message, err.reason_name), (grpc.StatusCode.UNAVAILABLE, "proxy", ""))

    def test_another_domain_and_other_exceptions_are_not_roomkey_reasons(self):
        info = error_details_pb2.ErrorInfo(reason="TOKEN_WRONG_ENVIRONMENT", domain="example.com")
        err = roomkey.error_of(_Error(grpc.StatusCode.INTERNAL, "m", _status(grpc.StatusCode.INTERNAL, info)))
        self.assertEqual(err.reason_name, "")
        self.assertIsNone(roomkey.error_of(ValueError("x")))


if __name__ == "__main__":
    unittest.main()
