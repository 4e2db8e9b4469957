package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v83/webhook"

	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

const (
	secretOld    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretNew    = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	secretOther  = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IG9uZQ=="
	stripeSecret = "whsec_stripe_test_secret"
)

type fixture struct {
	t   *testing.T
	st  *postgres.Store
	srv *httptest.Server
}

func newFixture(t *testing.T, ready func(context.Context) error) *fixture {
	t.Helper()
	st := fakes.MustStore(t)
	reg := observability.NewRegistry()
	s, err := ingress.New(ingress.Options{
		Ingest: &eventlog.Ingestor{Store: st}, Secrets: []string{secretOld, secretNew}, StripeSecrets: []string{stripeSecret},
		Metrics: observability.NewIngressMetrics(reg), Registry: reg, Ready: ready,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, st: st, srv: srv}
}

func event(id string) []byte {
	return []byte(`{"type":"payment.failed","event_id":"` + id + `","invoice_id":"inv_1","customer_id":"cus_1",` +
		`"amount_minor":4900,"currency":"USD","occurred_at":"2026-11-29T10:00:00Z"}`)
}

// signed builds the Standard Webhooks headers for body with the reference library.
func signed(t *testing.T, secret string, body []byte, at time.Time) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign("msg_1", at, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", itoa(at.Unix()))
	h.Set("webhook-signature", sig)
	return h
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

type reply struct {
	Status   string   `json:"status"`
	Error    string   `json:"error"`
	Problems []string `json:"problems"`
}

func (f *fixture) post(path string, h http.Header, body []byte) (int, reply) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, r
}

func (f *fixture) rows() int {
	var n int
	if err := f.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func TestSignatureVectors(t *testing.T) {
	now := time.Now()
	tampered := func(h http.Header) ([]byte, http.Header) { return append(event("evt_t"), ' '), h }
	cases := []struct {
		name   string
		secret string
		at     time.Time
		mangle func(http.Header) ([]byte, http.Header)
		want   int
		errSub string
	}{
		{"valid", secretOld, now, nil, http.StatusAccepted, ""},
		{"rotated: the newer secret", secretNew, now, nil, http.StatusAccepted, ""},
		{"wrong secret", secretOther, now, nil, http.StatusUnauthorized, "no valid signature"},
		{"expired", secretOld, now.Add(-6 * time.Minute), nil, http.StatusUnauthorized, "5 minutes"},
		{"from the future", secretOld, now.Add(6 * time.Minute), nil, http.StatusUnauthorized, "5 minutes"},
		{"tampered body", secretOld, now, tampered, http.StatusUnauthorized, "no valid signature"},
		{"missing signature", secretOld, now, func(h http.Header) ([]byte, http.Header) {
			h.Del("webhook-signature")
			return nil, h
		}, http.StatusUnauthorized, "missing"},
		{"missing id", secretOld, now, func(h http.Header) ([]byte, http.Header) {
			h.Del("webhook-id")
			return nil, h
		}, http.StatusUnauthorized, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			body := event("evt_t")
			h := signed(t, tc.secret, body, tc.at)
			if tc.mangle != nil {
				b, nh := tc.mangle(h)
				if b != nil {
					body = b
				}
				h = nh
			}
			code, r := f.post("/v1/events", h, body)
			if code != tc.want || !strings.Contains(r.Error, tc.errSub) {
				t.Fatalf("answer %d %+v, want %d with %q", code, r, tc.want, tc.errSub)
			}
			wantRows := 0
			if tc.want == http.StatusAccepted {
				wantRows = 1
			}
			if f.rows() != wantRows {
				t.Fatalf("event log has %d rows, want %d", f.rows(), wantRows)
			}
		})
	}
}

func TestResponses(t *testing.T) {
	f := newFixture(t, nil)
	body := event("evt_r1")
	if code, r := f.post("/v1/events", signed(t, secretOld, body, time.Now()), body); code != http.StatusAccepted || r.Status != "accepted" {
		t.Fatalf("first: %d %+v", code, r)
	}
	if code, r := f.post("/v1/events", signed(t, secretOld, body, time.Now()), body); code != http.StatusOK || r.Status != "duplicate" {
		t.Fatalf("exact duplicate: %d %+v, want 200 duplicate", code, r)
	}
	other := bytes.Replace(body, []byte("4900"), []byte("5000"), 1)
	if code, _ := f.post("/v1/events", signed(t, secretOld, other, time.Now()), other); code != http.StatusConflict {
		t.Fatalf("same id, other body: %d, want 409", code)
	}
	bad := []byte(`{"type":"payment.failed","event_id":"evt_r2","invoice_id":"inv_1","amount_minor":-1,"currency":"XYZ","occurred_at":"2026-11-29T10:00:00Z"}`)
	code, r := f.post("/v1/events", signed(t, secretOld, bad, time.Now()), bad)
	if code != http.StatusBadRequest || len(r.Problems) < 3 {
		t.Fatalf("invalid: %d %+v, want 400 with the problems", code, r)
	}
	for _, field := range []string{"customer_id", "amount_minor", "currency"} {
		if !strings.Contains(strings.Join(r.Problems, "\n"), field) {
			t.Errorf("problems %q do not name %s", r.Problems, field)
		}
	}
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 300<<10)...)
	big = append(big, `"}`...)
	if code, _ := f.post("/v1/events", signed(t, secretOld, big, time.Now()), big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("large body: %d, want 413", code)
	}
	h := signed(t, secretOld, body, time.Now())
	h.Set("Content-Type", "text/plain")
	if code, _ := f.post("/v1/events", h, body); code != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d, want 415", code)
	}
	if f.rows() != 1 {
		t.Fatalf("event log has %d rows, want 1", f.rows())
	}
}

func TestDatabaseDownAnswers503(t *testing.T) {
	f := newFixture(t, nil)
	f.st.Close() // PostgreSQL unreachable from the ingress's point of view
	body := event("evt_d1")
	code, r := f.post("/v1/events", signed(t, secretOld, body, time.Now()), body)
	if code != http.StatusServiceUnavailable || r.Status != "unavailable" {
		t.Fatalf("answer %d %+v, want 503", code, r)
	}
}

func stripeInvoiceFailed(id string) []byte {
	return []byte(`{"id":"` + id + `","object":"event","api_version":"2025-09-30.clover","created":1764410400,
	"type":"invoice.payment_failed","livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},
	"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_s1","amount_due":4900,"amount_remaining":4900,
	"currency":"usd","attempt_count":1,"customer_email":"ada@example.com","customer_name":"Ada Lovelace"}}}`)
}

func TestStripeWebhooks(t *testing.T) {
	f := newFixture(t, nil)
	post := func(payload []byte, secret string) (int, reply) {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now()})
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Stripe-Signature", sp.Header)
		return f.post("/v1/stripe", h, sp.Payload)
	}
	if code, r := post(stripeInvoiceFailed("evt_s1"), stripeSecret); code != http.StatusAccepted {
		t.Fatalf("invoice.payment_failed: %d %+v", code, r)
	}
	if code, _ := post(stripeInvoiceFailed("evt_s2"), "whsec_wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d, want 401", code)
	}
	other := []byte(`{"id":"evt_s3","object":"event","api_version":"2025-09-30.clover","created":1764410400,"type":"customer.created","data":{"object":{"id":"cus_x","object":"customer"}}}`)
	if code, r := post(other, stripeSecret); code != http.StatusOK || r.Status != "ignored" {
		t.Fatalf("customer.created: %d %+v, want 200 ignored", code, r)
	}
	var typ, source string
	if err := f.st.Pool().QueryRow(context.Background(), `SELECT type, source FROM events WHERE event_id = 'evt_s1'`).Scan(&typ, &source); err != nil {
		t.Fatal(err)
	}
	if typ != "payment.failed" || source != "stripe" || f.rows() != 1 {
		t.Fatalf("recorded %s from %s, %d rows", typ, source, f.rows())
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	f := newFixture(t, func(context.Context) error { return errors.New("Temporal: connection refused") })
	get := func(path string) (int, string) {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "Temporal") {
		t.Fatalf("/readyz: %d %s, want 503 naming Temporal", code, body)
	}
	body := event("evt_m1")
	f.post("/v1/events", signed(t, secretOld, body, time.Now()), body)
	f.post("/v1/events", signed(t, secretOther, body, time.Now()), body)
	_, m := get("/metrics")
	for _, want := range []string{
		`recoup_events_received_total{result="accepted",source="http",type="payment.failed"} 1`,
		`recoup_events_received_total{result="unauthorized",source="http",type="unknown"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// An event dated beyond the allowed clock skew is accepted, recorded as received + skew with
// the producer's time kept, and counted.
func TestFutureDatedEventIsClampedAndCounted(t *testing.T) {
	f := newFixture(t, nil)
	body := bytes.Replace(event("evt_future"), []byte("2026-11-29T10:00:00Z"), []byte("2099-01-01T00:00:00Z"), 1)
	if code, r := f.post("/v1/events", signed(t, secretOld, body, time.Now()), body); code != http.StatusAccepted {
		t.Fatalf("answer %d %+v", code, r)
	}
	var occurred, received, original time.Time
	if err := f.st.Pool().QueryRow(context.Background(),
		`SELECT occurred_at, received_at, occurred_at_original FROM events WHERE event_id = 'evt_future'`).
		Scan(&occurred, &received, &original); err != nil {
		t.Fatal(err)
	}
	if !occurred.Equal(received.Add(postgres.DefaultMaxClockSkew)) || !original.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("recorded occurred_at %v, received %v, original %v", occurred, received, original)
	}
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	if want := `recoup_events_clock_clamped_total{source="http"} 1`; !strings.Contains(string(m), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
