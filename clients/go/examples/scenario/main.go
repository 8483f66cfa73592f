// The Go scenario that CI runs against a real roomkey (test/integration/clients.test.ts),
// using only the shipped client. docs/clients.md quotes the parts between
// "snippet:" markers. Needs ROOMKEY_ADDR, ROOMKEY_ADMIN_KEY and
// SCENARIO_PROVIDER_URL, SCENARIO_GOOD_KEY, SCENARIO_NAME (see the test).
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/roomkey-dev/roomkey/clients/go/roomkey"
	roomkeyv1 "github.com/roomkey-dev/roomkey/clients/go/roomkey/v1"
)

func must[T any](value T, err error) T {
	if err != nil {
		log.Fatalf("FAIL: %v", err)
	}
	return value
}

func dial(environment, token string) *grpc.ClientConn {
	return must(roomkey.Dial(roomkey.Config{Environment: environment, Token: token}))
}

// expect fails unless err is a roomkey error with this code and reason.
func expect(err error, code codes.Code, reason roomkeyv1.ErrorReason) *roomkey.Error {
	rkErr, ok := roomkey.ErrorOf(err)
	if !ok || rkErr.Code != code || rkErr.Reason != reason {
		log.Fatalf("FAIL: want %s %s, got %v", code, reason, err)
	}
	return rkErr
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := os.Getenv("ROOMKEY_ADMIN_KEY")
	name := os.Getenv("SCENARIO_NAME")

	// A token made in staging opens staging and nothing else.
	stagingAdmin := roomkeyv1.NewTokenServiceClient(dial("staging", admin))
	created := must(stagingAdmin.CreateToken(ctx, &roomkeyv1.CreateTokenRequest{
		Name:   name,
		Scopes: []string{"accounts:read", "tokens:verify"},
	}))
	secret := created.GetSecret()
	// snippet:go-call
	conn, err := roomkey.Dial(roomkey.Config{Environment: "staging", Token: secret})
	if err != nil {
		log.Fatal(err)
	}
	accounts := roomkeyv1.NewAccountServiceClient(conn)
	list, err := accounts.ListAccounts(ctx, &roomkeyv1.ListAccountsRequest{PageSize: 10})
	// end-snippet
	must(list, err)
	fmt.Printf("staging token in staging: OK (%d accounts)\n", len(list.GetAccounts()))
	for _, environment := range []string{"development", "production"} {
		other := roomkeyv1.NewAccountServiceClient(dial(environment, secret))
		_, err := other.ListAccounts(ctx, &roomkeyv1.ListAccountsRequest{})
		// snippet:go-errors
		if rkErr, ok := roomkey.ErrorOf(err); ok && rkErr.Reason == roomkeyv1.ErrorReason_ERROR_REASON_TOKEN_WRONG_ENVIRONMENT {
			fmt.Printf("staging token in %s: %s %s (token_environment=%s)\n",
				environment, rkErr.Code, rkErr.ReasonName, rkErr.Metadata["token_environment"])
		}
		// end-snippet
		expect(err, codes.PermissionDenied, roomkeyv1.ErrorReason_ERROR_REASON_TOKEN_WRONG_ENVIRONMENT)
	}

	// A header the call sets itself wins: the staging connection asks production.
	_, err = accounts.ListAccounts(metadata.AppendToOutgoingContext(ctx, "roomkey-environment", "production"), &roomkeyv1.ListAccountsRequest{})
	perCall := expect(err, codes.PermissionDenied, roomkeyv1.ErrorReason_ERROR_REASON_TOKEN_WRONG_ENVIRONMENT)
	fmt.Printf("per-call environment: %s (requested_environment=%s)\n", perCall.ReasonName, perCall.Metadata["requested_environment"])

	// An API key account connected in development reaches ACTIVE on a watch,
	// and exists only there.
	devConn := dial("development", admin)
	environments := roomkeyv1.NewEnvironmentServiceClient(devConn)
	must(environments.PutIntegration(ctx, &roomkeyv1.PutIntegrationRequest{Integration: &roomkeyv1.Integration{
		Name:     name,
		AuthType: roomkeyv1.AuthType_AUTH_TYPE_API_KEY,
		CredentialCheck: &roomkeyv1.CredentialCheck{
			Url:             os.Getenv("SCENARIO_PROVIDER_URL") + "/me",
			Placement:       roomkeyv1.CredentialPlacement_CREDENTIAL_PLACEMENT_BEARER,
			AccountIdPath:   "data.id",
			AccountNamePath: "data.profile.name",
		},
	}}))
	devAccounts := roomkeyv1.NewAccountServiceClient(devConn)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	// snippet:go-watch
	stream, err := devAccounts.WatchAccounts(watchCtx, &roomkeyv1.WatchAccountsRequest{Integration: name})
	// end-snippet
	must(stream, err)
	connect := func(key string) *roomkeyv1.Account {
		// snippet:go-connect
		response, err := devAccounts.ConnectAccount(ctx, &roomkeyv1.ConnectAccountRequest{
			Integration: name,
			TenantId:    "tenant-42",
			Credential:  &roomkeyv1.ConnectAccountRequest_ApiKey{ApiKey: &roomkeyv1.ApiKeyCredential{Key: key}},
		})
		// end-snippet
		return must(response, err).GetAccount()
	}
	settled := func(id string) *roomkeyv1.Account {
		for {
			event, err := stream.Recv()
			if err == io.EOF {
				log.Fatal("FAIL: the watch ended")
			}
			account := must(event, err).GetAccount()
			if account.GetId() == id && account.GetStatus() != roomkeyv1.AccountStatus_ACCOUNT_STATUS_CONNECTING {
				return account
			}
		}
	}
	good := connect(os.Getenv("SCENARIO_GOOD_KEY"))
	active := settled(good.GetId())
	if active.GetStatus() != roomkeyv1.AccountStatus_ACCOUNT_STATUS_ACTIVE {
		log.Fatalf("FAIL: account %s ended %s: %s", active.GetId(), active.GetStatus(), active.GetStatusReason())
	}
	fmt.Printf("account %s in development: %s on WatchAccounts (remote %s)\n",
		active.GetId(), active.GetStatus(), active.GetRemoteName())
	for _, environment := range []string{"staging", "production"} {
		elsewhere := roomkeyv1.NewAccountServiceClient(dial(environment, admin))
		_, err := elsewhere.GetAccount(ctx, &roomkeyv1.GetAccountRequest{Id: good.GetId()})
		rkErr := expect(err, codes.NotFound, roomkeyv1.ErrorReason_ERROR_REASON_ACCOUNT_NOT_FOUND)
		fmt.Printf("account in %s: %s %s\n", environment, rkErr.Code, rkErr.ReasonName)
	}

	// A bad key ends FAILED with the provider's words.
	bad := connect("not-a-valid-key")
	failed := settled(bad.GetId())
	if failed.GetStatus() != roomkeyv1.AccountStatus_ACCOUNT_STATUS_FAILED {
		log.Fatalf("FAIL: bad key ended %s", failed.GetStatus())
	}
	fmt.Printf("bad key: %s: %s\n", failed.GetStatus(), failed.GetStatusReason())

	// An invalid environment name is INVALID_ARGUMENT, naming the header.
	invalid := roomkeyv1.NewEnvironmentServiceClient(dial("Not_An_Environment", admin))
	_, err = invalid.GetEnvironment(ctx, &roomkeyv1.GetEnvironmentRequest{})
	rkErr := expect(err, codes.InvalidArgument, roomkeyv1.ErrorReason_ERROR_REASON_ENVIRONMENT_INVALID)
	if len(rkErr.FieldViolations) == 0 {
		log.Fatal("FAIL: no field violation")
	}
	violation := rkErr.FieldViolations[0]
	fmt.Printf("invalid environment: %s %s, field %q: %s\n", rkErr.Code, rkErr.ReasonName, violation.GetField(), violation.GetDescription())
	fmt.Println("go scenario: all checks passed")
}
