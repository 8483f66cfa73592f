// Package roomkey is the Go client of roomkey. The generated stubs live in
// package roomkeyv1 (github.com/roomkey-dev/roomkey/clients/go/roomkey/v1);
// this package adds only what every call needs: a connection that sends
// `roomkey-environment` and `authorization` on every call, and ErrorOf, which
// reads an error's reason, metadata and field violations.
//
//	conn, err := roomkey.Dial(roomkey.Config{Environment: "staging", Token: secret})
//	tokens := roomkeyv1.NewTokenServiceClient(conn)
package roomkey

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	roomkeyv1 "github.com/roomkey-dev/roomkey/clients/go/roomkey/v1"
)

// The environment variables Dial reads for the fields a Config leaves empty.
const (
	EnvAddr        = "ROOMKEY_ADDR"
	EnvEnvironment = "ROOMKEY_ENVIRONMENT"
	EnvToken       = "ROOMKEY_TOKEN"
)

// DefaultAddr is where roomkey serves native gRPC on local defaults.
const DefaultAddr = "localhost:50051"

// ErrorDomain is the domain of the ErrorInfo detail in roomkey's errors.
const ErrorDomain = "roomkey.dev"

// Config says where roomkey is and what every call carries. Empty fields are
// read from ROOMKEY_ADDR, ROOMKEY_ENVIRONMENT and ROOMKEY_TOKEN.
type Config struct {
	// Addr is `host:port` or `http://host:port` for plaintext (as roomkey
	// serves it), or `https://host[:port]` for TLS (roomkey behind a proxy
	// that terminates TLS). Default localhost:50051.
	Addr string
	// Environment is sent as `roomkey-environment`, such as `staging`.
	Environment string
	// Token is an API token's secret or the admin key, sent as
	// `authorization: Bearer <token>`.
	Token string
}

func (c Config) withEnv() Config {
	if c.Addr == "" {
		c.Addr = os.Getenv(EnvAddr)
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Environment == "" {
		c.Environment = os.Getenv(EnvEnvironment)
	}
	if c.Token == "" {
		c.Token = os.Getenv(EnvToken)
	}
	return c
}

// Dial returns a connection on which every call carries the configured
// environment and token. Pass it to roomkeyv1.NewTokenServiceClient and the
// other generated constructors; opts are added to the dial options.
func Dial(cfg Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	cfg = cfg.withEnv()
	if cfg.Environment == "" {
		return nil, fmt.Errorf("roomkey: no environment: set Config.Environment or %s", EnvEnvironment)
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("roomkey: no token: set Config.Token or %s", EnvToken)
	}
	target, secure, err := ParseAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	transport := insecure.NewCredentials()
	if secure {
		transport = credentials.NewClientTLSFromCert(nil, "")
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(Credentials{Environment: cfg.Environment, Token: cfg.Token, Secure: secure}),
	}, opts...)
	return grpc.NewClient(target, all...)
}

// ParseAddr reads an address as Dial does: `host:port` or `http://host:port`
// (plaintext), or `https://host[:port]` (TLS, port 443 if left out). It
// returns the gRPC target and whether to use TLS; anything else (another
// scheme, a path, a query, user info, a missing or bad port) is an error.
func ParseAddr(addr string) (target string, secure bool, err error) {
	bad := fmt.Errorf("roomkey: address %q: want host:port, http://host:port or https://host[:port]", addr)
	hostPort := addr
	if strings.Contains(addr, "://") {
		u, parseErr := url.Parse(addr)
		if parseErr != nil {
			return "", false, bad
		}
		switch u.Scheme {
		case "http":
		case "https":
			secure = true
		default:
			return "", false, bad
		}
		if u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return "", false, bad
		}
		hostPort = u.Host
		if u.Port() == "" && !strings.HasSuffix(u.Host, ":") && secure {
			hostPort = net.JoinHostPort(u.Hostname(), "443")
		}
	}
	host, port, splitErr := net.SplitHostPort(hostPort)
	if splitErr != nil || host == "" {
		return "", false, bad
	}
	if number, numErr := strconv.Atoi(port); numErr != nil || number < 1 || number > 65535 {
		return "", false, bad
	}
	return net.JoinHostPort(host, port), secure, nil
}

// Credentials puts `roomkey-environment` and `authorization` on every call.
// Dial uses it. A value the call sets itself wins, so one connection can act
// on several environments:
//
//	ctx = metadata.AppendToOutgoingContext(ctx, "roomkey-environment", "qa")
type Credentials struct {
	Environment string
	Token       string
	// Secure makes gRPC refuse to send the token over plaintext.
	Secure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c Credentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	own, _ := metadata.FromOutgoingContext(ctx)
	out := map[string]string{}
	if len(own.Get("roomkey-environment")) == 0 {
		out["roomkey-environment"] = c.Environment
	}
	if len(own.Get("authorization")) == 0 {
		out["authorization"] = "Bearer " + c.Token
	}
	return out, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c Credentials) RequireTransportSecurity() bool { return c.Secure }

// Error is a roomkey error as a caller branches on it.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message, for people; do not branch on it.
	Message string
	// Reason is the stable reason from the ErrorInfo detail, or
	// ERROR_REASON_UNSPECIFIED when there is none (an error that did not come
	// from roomkey, such as a connection failure) or when the server sent a
	// reason newer than this client: ReasonName still has it then.
	Reason roomkeyv1.ErrorReason
	// ReasonName is the reason as the server sent it in ErrorInfo, such as
	// TOKEN_WRONG_ENVIRONMENT; empty when there is none.
	ReasonName string
	// Metadata is the ErrorInfo's metadata, such as `token_environment`.
	Metadata map[string]string
	// FieldViolations are the BadRequest detail's violations: which field of
	// the request (or which metadata header) was wrong, and why.
	FieldViolations []*errdetails.BadRequest_FieldViolation
}

func (e *Error) Error() string {
	if e.ReasonName == "" {
		return fmt.Sprintf("roomkey: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("roomkey: %s %s: %s", e.Code, e.ReasonName, e.Message)
}

// ErrorOf reads a gRPC error returned by a roomkey call. It returns false for
// nil and for errors that carry no gRPC status.
func ErrorOf(err error) (*Error, bool) {
	if err == nil {
		return nil, false
	}
	st, ok := status.FromError(err)
	if !ok {
		var target *Error
		if errors.As(err, &target) {
			return target, true
		}
		return nil, false
	}
	out := &Error{Code: st.Code(), Message: st.Message(), Metadata: map[string]string{}}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() != ErrorDomain {
				continue
			}
			out.ReasonName = d.GetReason()
			if value, known := roomkeyv1.ErrorReason_value["ERROR_REASON_"+d.GetReason()]; known && d.GetReason() != "" {
				out.Reason = roomkeyv1.ErrorReason(value)
			}
			for k, v := range d.GetMetadata() {
				out.Metadata[k] = v
			}
		case *errdetails.BadRequest:
			out.FieldViolations = append(out.FieldViolations, d.GetFieldViolations()...)
		}
	}
	return out, true
}
