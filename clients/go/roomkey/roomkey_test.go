package roomkey

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	roomkeyv1 "github.com/roomkey-dev/roomkey/clients/go/roomkey/v1"
)

// The table all three clients read (clients/testdata/addresses.json).
func TestParseAddr(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/addresses.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Addr   string `json:"addr"`
		Target string `json:"target"`
		TLS    bool   `json:"tls"`
		Error  bool   `json:"error"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		target, secure, err := ParseAddr(c.Addr)
		if c.Error {
			if err == nil {
				t.Errorf("ParseAddr(%q) = %q, %v; want an error", c.Addr, target, secure)
			}
			continue
		}
		if err != nil || target != c.Target || secure != c.TLS {
			t.Errorf("ParseAddr(%q) = %q, %v, %v; want %q, %v", c.Addr, target, secure, err, c.Target, c.TLS)
		}
	}
}

func TestCredentialsLetACallChooseItsOwnEnvironment(t *testing.T) {
	creds := Credentials{Environment: "staging", Token: "rk_staging_x"}
	plain, _ := creds.GetRequestMetadata(context.Background())
	if plain["roomkey-environment"] != "staging" || plain["authorization"] != "Bearer rk_staging_x" {
		t.Fatalf("metadata %v", plain)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "roomkey-environment", "qa")
	own, _ := creds.GetRequestMetadata(ctx)
	if _, set := own["roomkey-environment"]; set || own["authorization"] != "Bearer rk_staging_x" {
		t.Fatalf("a call's own environment must win: %v", own)
	}
}

func TestErrorOfKeepsAReasonNewerThanTheClient(t *testing.T) {
	st, _ := status.New(codes.FailedPrecondition, "new").WithDetails(
		&errdetails.ErrorInfo{Reason: "SOMETHING_NEW", Domain: ErrorDomain, Metadata: map[string]string{"k": "v"}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "name", Description: "bad"}}},
	)
	got, ok := ErrorOf(st.Err())
	if !ok || got.Reason != roomkeyv1.ErrorReason_ERROR_REASON_UNSPECIFIED || got.ReasonName != "SOMETHING_NEW" ||
		got.Metadata["k"] != "v" || len(got.FieldViolations) != 1 || got.FieldViolations[0].GetField() != "name" {
		t.Fatalf("ErrorOf = %+v, %v", got, ok)
	}
	known, _ := status.New(codes.PermissionDenied, "x").WithDetails(
		&errdetails.ErrorInfo{Reason: "TOKEN_WRONG_ENVIRONMENT", Domain: ErrorDomain},
	)
	got, _ = ErrorOf(known.Err())
	if got.Reason != roomkeyv1.ErrorReason_ERROR_REASON_TOKEN_WRONG_ENVIRONMENT {
		t.Fatalf("reason %v", got.Reason)
	}
	other, _ := status.New(codes.Internal, "x").WithDetails(&errdetails.ErrorInfo{Reason: "TOKEN_WRONG_ENVIRONMENT", Domain: "example.com"})
	if got, _ = ErrorOf(other.Err()); got.ReasonName != "" {
		t.Fatalf("another domain's reason taken: %+v", got)
	}
	if _, ok := ErrorOf(nil); ok {
		t.Fatal("ErrorOf(nil) is not an error")
	}
}
