package roomkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook delivery, per Standard Webhooks
// (https://www.standardwebhooks.com).
const (
	// WebhookIDHeader is the event's id, the same on every attempt and
	// redelivery: deduplicate on it.
	WebhookIDHeader = "webhook-id"
	// WebhookTimestampHeader is when the attempt was signed, in unix seconds.
	WebhookTimestampHeader = "webhook-timestamp"
	// WebhookSignatureHeader is one or more space-separated `v1,<base64>`
	// signatures (two during a secret rotation).
	WebhookSignatureHeader = "webhook-signature"
)

// DefaultWebhookTolerance is how far a delivery's timestamp may be from now,
// in the past or the future, unless WebhookVerifier.Tolerance says otherwise.
const DefaultWebhookTolerance = 5 * time.Minute

// Why Verify refused a delivery; test with errors.Is. The error returned is a
// *WebhookError that wraps one of these and says more.
var (
	ErrWebhookMissingHeader   = errors.New("roomkey webhook: missing header")
	ErrWebhookBadTimestamp    = errors.New("roomkey webhook: bad timestamp")
	ErrWebhookTimestampTooOld = errors.New("roomkey webhook: timestamp too old")
	ErrWebhookTimestampTooNew = errors.New("roomkey webhook: timestamp too new")
	ErrWebhookBadSignature    = errors.New("roomkey webhook: no matching signature")
)

// WebhookError is a refused delivery: answer it 4xx and drop it.
type WebhookError struct {
	// Reason is stable, for logs and metrics: missing_header, bad_timestamp,
	// timestamp_too_old, timestamp_too_new or bad_signature (the same words
	// as the TypeScript and Python clients).
	Reason string
	// Detail says what was wrong, such as `no webhook-id header`.
	Detail string
	kind   error
}

func (e *WebhookError) Error() string { return "roomkey webhook: " + e.Detail }

// Unwrap returns the Err* value of the reason.
func (e *WebhookError) Unwrap() error { return e.kind }

func refuse(kind error, detail string) *WebhookError {
	reasons := map[error]string{
		ErrWebhookMissingHeader:   "missing_header",
		ErrWebhookBadTimestamp:    "bad_timestamp",
		ErrWebhookTimestampTooOld: "timestamp_too_old",
		ErrWebhookTimestampTooNew: "timestamp_too_new",
		ErrWebhookBadSignature:    "bad_signature",
	}
	return &WebhookError{Reason: reasons[kind], Detail: detail, kind: kind}
}

// WebhookVerifier checks that deliveries come from roomkey. It holds one
// secret or several: a receiver in the middle of a rotation holds the new and
// the old one, and a delivery signed by either is accepted. Safe for
// concurrent use once its fields are set.
type WebhookVerifier struct {
	// Tolerance is how far `webhook-timestamp` may be from now, in the past or
	// the future: a captured delivery cannot be replayed later than that.
	// NewWebhookVerifier sets DefaultWebhookTolerance.
	Tolerance time.Duration
	// Now is the clock; nil means time.Now. For tests.
	Now  func() time.Time
	keys [][]byte
}

// NewWebhookVerifier returns a verifier of deliveries signed with any of
// secrets, each `whsec_<base64>` as CreateWebhookEndpoint returned it (the
// prefix may be left out). An empty or undecodable secret is an error: a
// configuration mistake, not a bad delivery.
func NewWebhookVerifier(secrets ...string) (*WebhookVerifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("roomkey webhook: no signing secret")
	}
	v := &WebhookVerifier{Tolerance: DefaultWebhookTolerance}
	for _, secret := range secrets {
		encoded := strings.TrimPrefix(secret, "whsec_")
		// The decoder skips line breaks; a secret has none. The secret stays out of the error.
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(key) == 0 || strings.ContainsAny(encoded, "\r\n") {
			return nil, errors.New("roomkey webhook: a signing secret is not whsec_<base64>")
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// Verify checks one delivery: the three headers are there, the timestamp is
// within Tolerance of now, and one `v1` signature matches a secret. body must
// be the raw bytes as received (JSON decoded and encoded again does not
// verify). The error is a *WebhookError; VerifyEvent also decodes the body.
func (v *WebhookVerifier) Verify(header http.Header, body []byte) error {
	id := headerValue(header, WebhookIDHeader)
	timestamp := headerValue(header, WebhookTimestampHeader)
	signatures := strings.Join(headerValues(header, WebhookSignatureHeader), " ")
	for _, h := range [][2]string{{WebhookIDHeader, id}, {WebhookTimestampHeader, timestamp}, {WebhookSignatureHeader, signatures}} {
		if h[1] == "" {
			return refuse(ErrWebhookMissingHeader, fmt.Sprintf("no %s header", h[0]))
		}
	}
	seconds, ok := parseUnixSeconds(timestamp)
	if !ok {
		return refuse(ErrWebhookBadTimestamp, "webhook-timestamp is not an integer of unix seconds")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	// Whole seconds on both sides, so that a timestamp exactly Tolerance away is accepted in every client.
	age, tolerance := now().Unix()-seconds, int64(v.Tolerance/time.Second)
	if age > tolerance {
		return refuse(ErrWebhookTimestampTooOld, fmt.Sprintf("webhook-timestamp is %d s old", age))
	}
	if -age > tolerance {
		return refuse(ErrWebhookTimestampTooNew, fmt.Sprintf("webhook-timestamp is %d s in the future", -age))
	}
	var given [][]byte
	for _, entry := range strings.Split(signatures, " ") {
		value, isV1 := strings.CutPrefix(entry, "v1,")
		if !isV1 {
			continue // another version, such as v1a, or an empty entry
		}
		if signature, err := base64.StdEncoding.DecodeString(value); err == nil {
			given = append(given, signature)
		}
	}
	for _, key := range v.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + timestamp + "."))
		mac.Write(body)
		expected := mac.Sum(nil)
		for _, signature := range given {
			if hmac.Equal(signature, expected) {
				return nil
			}
		}
	}
	return refuse(ErrWebhookBadSignature, "no v1 signature matches the signing secret")
}

// parseUnixSeconds accepts digits only (no sign, space or fraction), as the
// TypeScript and Python clients do.
func parseUnixSeconds(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 15 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// headerValues finds a header whatever the case of its name, also in an
// http.Header built by hand with lower-case keys.
func headerValues(header http.Header, name string) []string {
	if values := header.Values(name); len(values) > 0 {
		return values
	}
	for key, values := range header {
		if strings.EqualFold(key, name) {
			return values
		}
	}
	return nil
}

func headerValue(header http.Header, name string) string {
	if values := headerValues(header, name); len(values) > 0 {
		return values[0]
	}
	return ""
}
