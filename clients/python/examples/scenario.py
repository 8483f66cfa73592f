"""The Python scenario that CI runs against a real roomkey (test/integration/clients.test.ts),
using only the shipped client. docs/clients.md quotes the parts between "snippet:"
markers. Needs ROOMKEY_ADDR, ROOMKEY_ADMIN_KEY and SCENARIO_PROVIDER_URL,
SCENARIO_GOOD_KEY, SCENARIO_NAME (see the test)."""

import os
import sys

import grpc

import roomkey
from roomkey.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    common_pb2,
    environment_service_pb2,
    environment_service_pb2_grpc,
    error_reason_pb2,
    token_service_pb2,
    token_service_pb2_grpc,
)


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect(call, code, reason):
    """Runs call, which must raise a roomkey error with this code and reason."""
    try:
        call()
    except grpc.RpcError as error:
        err = roomkey.error_of(error)
        if err is None or err.code != code or err.reason != reason:
            fail(f"want {code} {reason}, got {error}")
        return err
    fail(f"want {code}, got OK")


def main():
    admin = os.environ["ROOMKEY_ADMIN_KEY"]
    name = os.environ["SCENARIO_NAME"]

    # A token made in staging opens staging and nothing else.
    staging_admin = token_service_pb2_grpc.TokenServiceStub(roomkey.connect(environment="staging", token=admin))
    created = staging_admin.CreateToken(
        token_service_pb2.CreateTokenRequest(name=name, scopes=["accounts:read", "tokens:verify"]), timeout=10
    )
    secret = created.secret
    # snippet:python-call
    channel = roomkey.connect(environment="staging", token=secret)
    accounts = account_service_pb2_grpc.AccountServiceStub(channel)
    listed = accounts.ListAccounts(account_service_pb2.ListAccountsRequest(page_size=10), timeout=10)
    # end-snippet
    print(f"staging token in staging: OK ({len(listed.accounts)} accounts)")
    for environment in ("development", "production"):
        other = account_service_pb2_grpc.AccountServiceStub(roomkey.connect(environment=environment, token=secret))
        # snippet:python-errors
        try:
            other.ListAccounts(account_service_pb2.ListAccountsRequest(), timeout=10)
        except grpc.RpcError as error:
            err = roomkey.error_of(error)
            if err and err.reason == error_reason_pb2.ERROR_REASON_TOKEN_WRONG_ENVIRONMENT:
                print(
                    f"staging token in {environment}: {err.code.name} {err.reason_name}"
                    f" (token_environment={err.metadata['token_environment']})"
                )
        # end-snippet
        expect(
            lambda: other.ListAccounts(account_service_pb2.ListAccountsRequest(), timeout=10),
            grpc.StatusCode.PERMISSION_DENIED,
            error_reason_pb2.ERROR_REASON_TOKEN_WRONG_ENVIRONMENT,
        )

    # A header the call sets itself wins: the staging channel asks production.
    err = expect(
        lambda: accounts.ListAccounts(
            account_service_pb2.ListAccountsRequest(), metadata=[("roomkey-environment", "production")], timeout=10
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        error_reason_pb2.ERROR_REASON_TOKEN_WRONG_ENVIRONMENT,
    )
    print(f"per-call environment: {err.reason_name} (requested_environment={err.metadata['requested_environment']})")

    # An API key account connected in development reaches ACTIVE on a watch,
    # and exists only there.
    dev = roomkey.connect(environment="development", token=admin)
    environment_service_pb2_grpc.EnvironmentServiceStub(dev).PutIntegration(
        environment_service_pb2.PutIntegrationRequest(
            integration=environment_service_pb2.Integration(
                name=name,
                auth_type=common_pb2.AUTH_TYPE_API_KEY,
                credential_check=environment_service_pb2.CredentialCheck(
                    url=os.environ["SCENARIO_PROVIDER_URL"] + "/me",
                    placement=environment_service_pb2.CREDENTIAL_PLACEMENT_BEARER,
                    account_id_path="data.id",
                    account_name_path="data.profile.name",
                ),
            )
        ),
        timeout=10,
    )
    dev_accounts = account_service_pb2_grpc.AccountServiceStub(dev)
    # snippet:python-watch
    stream = dev_accounts.WatchAccounts(account_service_pb2.WatchAccountsRequest(integration=name), timeout=60)
    # end-snippet

    def connect(key):
        # snippet:python-connect
        response = dev_accounts.ConnectAccount(
            account_service_pb2.ConnectAccountRequest(
                integration=name,
                tenant_id="tenant-42",
                api_key=account_service_pb2.ApiKeyCredential(key=key),
            ),
            timeout=10,
        )
        # end-snippet
        return response.account

    def settled(account_id):
        for event in stream:
            if event.account.id == account_id and event.account.status != account_service_pb2.ACCOUNT_STATUS_CONNECTING:
                return event.account
        fail("the watch ended")

    good = connect(os.environ["SCENARIO_GOOD_KEY"])
    active = settled(good.id)
    if active.status != account_service_pb2.ACCOUNT_STATUS_ACTIVE:
        fail(f"account {active.id} ended {active.status}: {active.status_reason}")
    status_name = account_service_pb2.AccountStatus.Name(active.status)
    print(f"account {active.id} in development: {status_name} on WatchAccounts (remote {active.remote_name})")
    for environment in ("staging", "production"):
        elsewhere = account_service_pb2_grpc.AccountServiceStub(roomkey.connect(environment=environment, token=admin))
        err = expect(
            lambda: elsewhere.GetAccount(account_service_pb2.GetAccountRequest(id=good.id), timeout=10),
            grpc.StatusCode.NOT_FOUND,
            error_reason_pb2.ERROR_REASON_ACCOUNT_NOT_FOUND,
        )
        print(f"account in {environment}: {err.code.name} {err.reason_name}")

    # A bad key ends FAILED with the provider's words.
    bad = connect("not-a-valid-key")
    failed = settled(bad.id)
    if failed.status != account_service_pb2.ACCOUNT_STATUS_FAILED:
        fail(f"bad key ended {failed.status}")
    print(f"bad key: {account_service_pb2.AccountStatus.Name(failed.status)}: {failed.status_reason}")
    stream.cancel()

    # An invalid environment name is INVALID_ARGUMENT, naming the header.
    invalid = environment_service_pb2_grpc.EnvironmentServiceStub(
        roomkey.connect(environment="Not_An_Environment", token=admin)
    )
    err = expect(
        lambda: invalid.GetEnvironment(environment_service_pb2.GetEnvironmentRequest(), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        error_reason_pb2.ERROR_REASON_ENVIRONMENT_INVALID,
    )
    if not err.field_violations:
        fail("no field violation")
    violation = err.field_violations[0]
    print(f'invalid environment: {err.code.name} {err.reason_name}, field "{violation.field}": {violation.description}')
    print("python scenario: all checks passed")


if __name__ == "__main__":
    main()
