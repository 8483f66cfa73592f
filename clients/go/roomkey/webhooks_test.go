package roomkey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	roomkeyv1 "github.com/roomkey-dev/roomkey/clients/go/roomkey/v1"
)

const (
	webhookTestID   = "evt_0Nm2bqZp8tQy4rW1xKs9Lf"
	webhookTestNow  = int64(1_790_000_000)
	webhookTestBody = `{"id":"evt_0Nm2bqZp8tQy4rW1xKs9Lf","type":"account.active","environment":"staging",` +
		`"timestamp":"2026-09-21T12:00:00Z","data":{"account":{"id":"acc_1","status":"ACCOUNT_STATUS_ACTIVE"},` +
		`"previousStatus":"ACCOUNT_STATUS_CONNECTING"},"somethingNew":1}`
)

func newWebhookSecret(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(raw)
}

func signWebhook(t *testing.T, secret, id, timestamp, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func webhookDelivery(t *testing.T, secret string, timestamp int64) http.Header {
	ts := strconv.FormatInt(timestamp, 10)
	header := http.Header{}
	header.Set(WebhookIDHeader, webhookTestID)
	header.Set(WebhookTimestampHeader, ts)
	header.Set(WebhookSignatureHeader, signWebhook(t, secret, webhookTestID, ts, webhookTestBody))
	return header
}

func newTestWebhookVerifier(t *testing.T, secrets ...string) *WebhookVerifier {
	t.Helper()
	v, err := NewWebhookVerifier(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return time.Unix(webhookTestNow, 0) }
	return v
}

// expectRefusal fails unless err is a *WebhookError of this kind and reason.
func expectRefusal(t *testing.T, err error, kind error, reason string) *WebhookError {
	t.Helper()
	var refusal *WebhookError
	if !errors.Is(err, kind) || !errors.As(err, &refusal) || refusal.Reason != reason {
		t.Fatalf("want %v (%s), got %v", kind, reason, err)
	}
	return refusal
}

// The Standard Webhooks reference vector (the tests of standard-webhooks/standard-webhooks' libraries).
func TestWebhookReferenceVectorVerifies(t *testing.T) {
	header := http.Header{}
	header.Set("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	header.Set("Webhook-Timestamp", "1614265330")
	header.Set("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		v, err := NewWebhookVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		v.Now = func() time.Time { return time.Unix(1614265330, 0) }
		if err := v.Verify(header, []byte(`{"test": 2432232314}`)); err != nil {
			t.Errorf("secret %q: %v", secret[:8], err)
		}
	}
}

func TestWebhookSignedDeliveryVerifiesAndDecodes(t *testing.T) {
	secret := newWebhookSecret(t)
	v := newTestWebhookVerifier(t, secret)
	event, err := v.VerifyEvent(webhookDelivery(t, secret, webhookTestNow), []byte(webhookTestBody))
	if err != nil {
		t.Fatal(err)
	}
	if event.GetId() != webhookTestID || event.GetType() != "account.active" ||
		event.GetData().GetAccount().GetStatus() != roomkeyv1.AccountStatus_ACCOUNT_STATUS_ACTIVE ||
		event.GetData().GetPreviousStatus() != roomkeyv1.AccountStatus_ACCOUNT_STATUS_CONNECTING {
		t.Fatalf("event %v", event)
	}
	// Lower-case keys, as a hand-built http.Header may have them.
	lower := http.Header{}
	for key, values := range webhookDelivery(t, secret, webhookTestNow) {
		lower[strings.ToLower(key)] = values
	}
	if err := v.Verify(lower, []byte(webhookTestBody)); err != nil {
		t.Fatalf("lower-case header names: %v", err)
	}
}

func TestWebhookTamperedDeliveryIsRefused(t *testing.T) {
	secret := newWebhookSecret(t)
	v := newTestWebhookVerifier(t, secret)
	cases := map[string]func(http.Header) []byte{
		"body": func(http.Header) []byte { return []byte(webhookTestBody + " ") },
		"id": func(h http.Header) []byte {
			h.Set(WebhookIDHeader, "evt_other")
			return []byte(webhookTestBody)
		},
		"timestamp": func(h http.Header) []byte {
			h.Set(WebhookTimestampHeader, strconv.FormatInt(webhookTestNow-1, 10))
			return []byte(webhookTestBody)
		},
		"signed with another secret": func(h http.Header) []byte {
			ts := h.Get(WebhookTimestampHeader)
			h.Set(WebhookSignatureHeader, signWebhook(t, newWebhookSecret(t), webhookTestID, ts, webhookTestBody))
			return []byte(webhookTestBody)
		},
		"the right signature as v1a": func(h http.Header) []byte {
			value := strings.TrimPrefix(h.Get(WebhookSignatureHeader), "v1,")
			h.Set(WebhookSignatureHeader, "v1a,"+value+" v2,"+value)
			return []byte(webhookTestBody)
		},
	}
	for name, tamper := range cases {
		header := webhookDelivery(t, secret, webhookTestNow)
		body := tamper(header)
		t.Run(name, func(t *testing.T) {
			_, err := v.VerifyEvent(header, body)
			refusal := expectRefusal(t, err, ErrWebhookBadSignature, "bad_signature")
			if refusal.Error() != "roomkey webhook: no v1 signature matches the signing secret" {
				t.Fatalf("message %q", refusal.Error())
			}
		})
	}
}

func TestWebhookOneMatchingSignatureOrSecretIsEnough(t *testing.T) {
	secret, old := newWebhookSecret(t), newWebhookSecret(t)
	header := webhookDelivery(t, secret, webhookTestNow)
	ts := header.Get(WebhookTimestampHeader)
	header.Set(WebhookSignatureHeader, signWebhook(t, old, webhookTestID, ts, webhookTestBody)+" "+header.Get(WebhookSignatureHeader))
	if err := newTestWebhookVerifier(t, secret).Verify(header, []byte(webhookTestBody)); err != nil {
		t.Fatalf("the second signature matches: %v", err)
	}
	// The same, as two header lines.
	twoLines := webhookDelivery(t, secret, webhookTestNow)
	right := twoLines.Get(WebhookSignatureHeader)
	twoLines.Set(WebhookSignatureHeader, signWebhook(t, old, webhookTestID, ts, webhookTestBody))
	twoLines.Add(WebhookSignatureHeader, right)
	if err := newTestWebhookVerifier(t, secret).Verify(twoLines, []byte(webhookTestBody)); err != nil {
		t.Fatalf("two header lines, the second matches: %v", err)
	}
	if err := newTestWebhookVerifier(t, old, secret).Verify(webhookDelivery(t, secret, webhookTestNow), []byte(webhookTestBody)); err != nil {
		t.Fatalf("the second secret signed: %v", err)
	}
}

func TestWebhookTimestampMustBeWithinTolerance(t *testing.T) {
	secret := newWebhookSecret(t)
	v := newTestWebhookVerifier(t, secret)
	body := []byte(webhookTestBody)
	refusal := expectRefusal(t, v.Verify(webhookDelivery(t, secret, webhookTestNow-301), body), ErrWebhookTimestampTooOld, "timestamp_too_old")
	if refusal.Error() != "roomkey webhook: webhook-timestamp is 301 s old" {
		t.Fatalf("message %q", refusal.Error())
	}
	expectRefusal(t, v.Verify(webhookDelivery(t, secret, webhookTestNow+301), body), ErrWebhookTimestampTooNew, "timestamp_too_new")
	for _, at := range []int64{webhookTestNow - 300, webhookTestNow + 300} {
		if err := v.Verify(webhookDelivery(t, secret, at), body); err != nil {
			t.Fatalf("at the tolerance: %v", err)
		}
	}
	v.Tolerance = 10 * time.Minute
	if err := v.Verify(webhookDelivery(t, secret, webhookTestNow-301), body); err != nil {
		t.Fatalf("within a longer tolerance: %v", err)
	}
}

func TestWebhookTimestampMustBeDigits(t *testing.T) {
	secret := newWebhookSecret(t)
	v := newTestWebhookVerifier(t, secret)
	for _, ts := range []string{"abc", "1.5", "-5", "+1790000000", " 1790000000", "1e9", "1790000000000000000"} {
		header := webhookDelivery(t, secret, webhookTestNow)
		header.Set(WebhookTimestampHeader, ts)
		header.Set(WebhookSignatureHeader, signWebhook(t, secret, webhookTestID, ts, webhookTestBody))
		expectRefusal(t, v.Verify(header, []byte(webhookTestBody)), ErrWebhookBadTimestamp, "bad_timestamp")
	}
}

func TestWebhookMissingHeaderIsNamed(t *testing.T) {
	secret := newWebhookSecret(t)
	v := newTestWebhookVerifier(t, secret)
	for _, name := range []string{WebhookIDHeader, WebhookTimestampHeader, WebhookSignatureHeader} {
		header := webhookDelivery(t, secret, webhookTestNow)
		header.Del(name)
		refusal := expectRefusal(t, v.Verify(header, []byte(webhookTestBody)), ErrWebhookMissingHeader, "missing_header")
		if refusal.Error() != "roomkey webhook: no "+name+" header" {
			t.Fatalf("message %q", refusal.Error())
		}
	}
}

func TestWebhookBadSecretIsRefusedAtConstruction(t *testing.T) {
	for _, secret := range []string{"whsec_", "", "whsec_not base64!", "whsec_abc", "whsec_MfKQ9r8GKYqrTwjU\nPD8ILPZIo2LaLaSw"} {
		if _, err := NewWebhookVerifier(secret); err == nil || err.Error() != "roomkey webhook: a signing secret is not whsec_<base64>" {
			t.Errorf("secret %q: %v", secret, err)
		}
	}
	if _, err := NewWebhookVerifier(); err == nil {
		t.Error("no secret: want an error")
	}
}

func TestWebhookVerifiedBodyThatIsNotAnEventIsAnError(t *testing.T) {
	secret := newWebhookSecret(t)
	header := webhookDelivery(t, secret, webhookTestNow)
	body := "not json"
	header.Set(WebhookSignatureHeader, signWebhook(t, secret, webhookTestID, header.Get(WebhookTimestampHeader), body))
	_, err := newTestWebhookVerifier(t, secret).VerifyEvent(header, []byte(body))
	var refusal *WebhookError
	if err == nil || errors.As(err, &refusal) {
		t.Fatalf("want a decoding error, got %v", err)
	}
}
