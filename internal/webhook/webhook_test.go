package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

const (
	secret      = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks spec's example secret
	wrongSecret = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IHNlY3JldCE="
)

// received is one request as the billing service saw it.
type received struct {
	header      http.Header
	body        []byte
	verifyErr   error // standardwebhooks Verify with the right secret
	wrongSecErr error // standardwebhooks Verify with another secret
}

// receiver is a billing-service stand-in that verifies every request with the reference
// library and answers status.
func receiver(t *testing.T, status int) (*httptest.Server, func() []received) {
	t.Helper()
	right, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := standardwebhooks.NewWebhook(wrongSecret)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got []received
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec := received{
			header:      r.Header.Clone(),
			body:        b,
			verifyErr:   right.Verify(b, r.Header),
			wrongSecErr: wrong.Verify(b, r.Header),
		}
		if r.Method != http.MethodPost {
			rec.verifyErr = errors.New("method " + r.Method)
		}
		mu.Lock()
		got = append(got, rec)
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func newSender(t *testing.T, url string) *webhook.Sender {
	t.Helper()
	s, err := webhook.New(webhook.Config{URL: url, Secret: secret, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Enabled() {
		t.Fatal("sender with a URL is not enabled")
	}
	return s
}

type exhausted struct {
	InvoiceID string `json:"invoice_id"`
	Attempts  int    `json:"attempts"`
}

func TestSendIsSignedPerStandardWebhooks(t *testing.T) {
	srv, got := receiver(t, http.StatusNoContent)
	s := newSender(t, srv.URL)
	e := webhook.Event{ID: "msg_inv42_exhausted", Type: "dunning.exhausted", Payload: exhausted{InvoiceID: "inv_42", Attempts: 4}}

	now := time.Now()
	if err := s.Send(context.Background(), e, now); err != nil {
		t.Fatal(err)
	}
	// A retry of the same event, a second later.
	if err := s.Send(context.Background(), e, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	reqs := got()
	if len(reqs) != 2 {
		t.Fatalf("receiver saw %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.verifyErr != nil {
			t.Errorf("request %d: Verify with the right secret: %v", i, r.verifyErr)
		}
		if r.wrongSecErr == nil {
			t.Errorf("request %d: Verify with a wrong secret succeeded", i)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type = %q", i, ct)
		}
		if id := r.header.Get("webhook-id"); id != e.ID {
			t.Errorf("request %d: webhook-id = %q, want %q", i, id, e.ID)
		}
		sent := now.Add(time.Duration(i) * time.Second)
		if ts := r.header.Get("webhook-timestamp"); ts != strconv.FormatInt(sent.Unix(), 10) {
			t.Errorf("request %d: webhook-timestamp = %q, want %d", i, ts, sent.Unix())
		}
		if sig := r.header.Get("webhook-signature"); !strings.HasPrefix(sig, "v1,") {
			t.Errorf("request %d: webhook-signature = %q, want v1,<base64>", i, sig)
		}

		var b struct {
			Type      string    `json:"type"`
			Timestamp string    `json:"timestamp"`
			Data      exhausted `json:"data"`
		}
		dec := json.NewDecoder(strings.NewReader(string(r.body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			t.Fatalf("request %d: body %s: %v", i, r.body, err)
		}
		if b.Type != e.Type || b.Data != e.Payload {
			t.Errorf("request %d: body = %s", i, r.body)
		}
		if ts, err := time.Parse(time.RFC3339, b.Timestamp); err != nil || ts.Unix() != sent.Unix() {
			t.Errorf("request %d: body timestamp %q (%v), want %s", i, b.Timestamp, err, sent.UTC().Format(time.RFC3339))
		}
	}
	// Same ID, different timestamps: different signatures, both valid.
	if reqs[0].header.Get("webhook-signature") == reqs[1].header.Get("webhook-signature") {
		t.Error("two sends at different times carry the same signature")
	}
}

func TestVerifyRejectsTamperedBody(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	s := newSender(t, srv.URL)
	if err := s.Send(context.Background(), webhook.Event{ID: "msg_1", Type: "dunning.offer", Payload: map[string]int{"discount_percent": 10}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := got()[0]
	wh, _ := standardwebhooks.NewWebhook(secret)
	tampered := []byte(strings.Replace(string(r.body), "10", "90", 1))
	if err := wh.Verify(tampered, r.header); err == nil {
		t.Error("Verify accepted a tampered body")
	}
}

func TestSendStatusClassification(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusInternalServerError, false},
		{http.StatusServiceUnavailable, false},
		{http.StatusTooManyRequests, false},
		{http.StatusRequestTimeout, false},
		{http.StatusGone, true},
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusFound, false}, // not followed; not a success either
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv, got := receiver(t, tc.status)
			s := newSender(t, srv.URL)
			err := s.Send(context.Background(), webhook.Event{ID: "msg_1", Type: "dunning.exhausted", Payload: nil}, time.Now())
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *provider.Error", err, err)
			}
			if pe.Provider != "webhook" || pe.StatusCode != tc.status || pe.Permanent != tc.permanent {
				t.Errorf("err = %+v", pe)
			}
			if provider.IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", !tc.permanent, tc.permanent)
			}
			if n := len(got()); n != 1 {
				t.Errorf("receiver saw %d requests, want 1 (Send makes one attempt)", n)
			}
		})
	}
}

func TestSendConnectionRefusedIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s := newSender(t, url)
	err := s.Send(context.Background(), webhook.Event{ID: "msg_1", Type: "dunning.exhausted"}, time.Now())
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Permanent || errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want a retryable *provider.Error", err)
	}
}

func TestSendTimeoutIsOutcomeUnknown(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	defer close(release)
	s, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), webhook.Event{ID: "msg_1", Type: "dunning.exhausted"}, time.Now())
	if !errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want a wrapped provider.ErrOutcomeUnknown", err)
	}
}

func TestNew(t *testing.T) {
	s, err := webhook.New(webhook.Config{})
	if err != nil || s.Enabled() {
		t.Fatalf("empty config: enabled=%v err=%v, want disabled and no error", s.Enabled(), err)
	}
	if err := s.Send(context.Background(), webhook.Event{ID: "a", Type: "b"}, time.Now()); !errors.Is(err, webhook.ErrDisabled) {
		t.Errorf("Send on a disabled sender = %v, want ErrDisabled", err)
	}

	for _, tc := range []struct {
		name, url, secret, wantVar string
	}{
		{"missing secret", "https://billing.example/hooks", "", "BILLING_WEBHOOK_SECRET"},
		{"not base64", "https://billing.example/hooks", "whsec_not*base64!", "BILLING_WEBHOOK_SECRET"},
		{"empty key", "https://billing.example/hooks", "whsec_", "BILLING_WEBHOOK_SECRET"},
		{"relative url", "/hooks", secret, "BILLING_WEBHOOK_URL"},
		{"bad scheme", "ftp://billing.example/hooks", secret, "BILLING_WEBHOOK_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := webhook.New(webhook.Config{URL: tc.url, Secret: tc.secret})
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Errorf("err = %v, want one naming %s", err, tc.wantVar)
			}
			if err != nil && tc.secret != "" && len(tc.secret) > len("whsec_") && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("err leaks the secret: %v", err)
			}
		})
	}
}

func TestSendRejectsIncompleteEvent(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	s := newSender(t, srv.URL)
	for _, e := range []webhook.Event{{Type: "dunning.offer"}, {ID: "msg_1"}} {
		if err := s.Send(context.Background(), e, time.Now()); err == nil {
			t.Errorf("Send(%+v) succeeded", e)
		}
	}
	if n := len(got()); n != 0 {
		t.Errorf("receiver saw %d requests, want 0", n)
	}
}
