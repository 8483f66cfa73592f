package roomkey

import (
	"fmt"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	roomkeyv1 "github.com/roomkey-dev/roomkey/clients/go/roomkey/v1"
)

// VerifyEvent verifies a delivery as Verify does, then decodes its body into
// a roomkeyv1.WebhookEvent, ignoring fields newer than this client. A body
// that verifies but does not decode is an error that is not a *WebhookError.
func (v *WebhookVerifier) VerifyEvent(header http.Header, body []byte) (*roomkeyv1.WebhookEvent, error) {
	if err := v.Verify(header, body); err != nil {
		return nil, err
	}
	event := &roomkeyv1.WebhookEvent{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, event); err != nil {
		return nil, fmt.Errorf("roomkey webhook: the body is not a WebhookEvent: %w", err)
	}
	return event, nil
}
