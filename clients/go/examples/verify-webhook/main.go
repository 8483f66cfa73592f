// Verifies webhook deliveries with roomkey.WebhookVerifier, as a receiver
// does; test/integration runs it on deliveries that roomkey made. It reads
// from stdin
//
//	{"secrets": ["whsec_…"], "deliveries": [{"headers": {"webhook-id": "…", …}, "body": "<raw body>"}]}
//
// and prints one line per delivery, in order: `ok <webhook-id> <event type>`
// or `refused <reason>` (missing_header, bad_timestamp, timestamp_too_old,
// timestamp_too_new, bad_signature; bad_body for a body that verifies but is
// not a WebhookEvent). Exit status 0 once the input was read, 2 when it could
// not be.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/roomkey-dev/roomkey/clients/go/roomkey"
)

type input struct {
	Secrets    []string `json:"secrets"`
	Deliveries []struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	} `json:"deliveries"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "verify-webhook: reading stdin: %v\n", err)
		os.Exit(2)
	}
	verifier, err := roomkey.NewWebhookVerifier(in.Secrets...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "verify-webhook: %v\n", err)
		os.Exit(2)
	}
	for _, delivery := range in.Deliveries {
		header := http.Header{}
		for name, value := range delivery.Headers {
			header.Set(name, value)
		}
		event, err := verifier.VerifyEvent(header, []byte(delivery.Body))
		var refusal *roomkey.WebhookError
		switch {
		case errors.As(err, &refusal):
			fmt.Println("refused", refusal.Reason)
		case err != nil:
			fmt.Println("refused bad_body")
		default:
			fmt.Println("ok", header.Get(roomkey.WebhookIDHeader), event.GetType())
		}
	}
}
