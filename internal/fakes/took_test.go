package fakes_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
)

// A Took answer is an error the sender sees while the provider counts the message as
// accepted (a gateway lost SendGrid's 202); RequestsFor counts every request per key,
// accepted or not.
func TestTookCountsTheMessageAcceptedBehindAnErrorAndRequestsForCountsEveryAttempt(t *testing.T) {
	sg := fakes.NewSendGrid(t)
	s, err := sendgrid.New(sendgrid.Config{APIKey: "SG.took", BaseURL: sg.URL, FromEmail: "billing@recoup.example"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(key string) error {
		_, err := s.Send(context.Background(), sendgrid.Message{To: "jane@example.com", Subject: "Your payment failed",
			Text: "Please update your card.", IdempotencyKey: key})
		return err
	}
	sg.Queue(
		fakes.Response{Status: http.StatusBadGateway, Took: true}, // taken, answer lost
		fakes.Response{Status: http.StatusServiceUnavailable},     // not taken
	)
	if err := send("inv_1/1/email"); !errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("a 502 after the provider took the message: error %v, want one of unknown outcome", err)
	}
	if err := send("inv_2/1/email"); err == nil || errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("a 503: error %v, want a definite not-taken error", err)
	}
	if err := send("inv_2/1/email"); err != nil {
		t.Errorf("the retry after the 503: %v", err)
	}
	for _, c := range []struct {
		key                string
		accepted, requests int
	}{{"inv_1/1/email", 1, 1}, {"inv_2/1/email", 1, 2}, {"inv_3/1/email", 0, 0}} {
		if a, r := sg.Accepted(c.key), sg.RequestsFor(c.key); a != c.accepted || r != c.requests {
			t.Errorf("%s: accepted %d, requests %d; want %d and %d", c.key, a, r, c.accepted, c.requests)
		}
	}
	if got := sg.Requests()[0].Status; got != http.StatusBadGateway {
		t.Errorf("the first request was recorded as answered %d, want 502", got)
	}
	if sg.AcceptedTotal() != 2 {
		t.Errorf("accepted in all %d, want 2", sg.AcceptedTotal())
	}

	// Always with Took alone is not the success answer: it keeps answering the error.
	sg.Always(fakes.Response{Status: http.StatusGatewayTimeout, Took: true})
	if err := send("inv_4/1/email"); !errors.Is(err, provider.ErrOutcomeUnknown) || sg.Accepted("inv_4/1/email") != 1 {
		t.Errorf("Always 504 Took: error %v, accepted %d; want unknown outcome and 1", err, sg.Accepted("inv_4/1/email"))
	}
}
