package ingress_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
)

const (
	twilioToken   = "7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"
	publicBaseURL = "https://recoup.shop.example/hooks"
)

// providerFixture is an ingress with both providers' webhooks, the SendGrid signing key
// generated for the test (SendGrid keeps the private half; the test plays SendGrid).
type providerFixture struct {
	*fixture
	sgKey *ecdsa.PrivateKey
}

func newProviderFixture(t *testing.T) *providerFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := sendgrid.NewEventVerifier(base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	tw, err := twilio.NewRequestValidator(twilioToken)
	if err != nil {
		t.Fatal(err)
	}
	st := fakes.MustStore(t)
	reg := observability.NewRegistry()
	s, err := ingress.New(ingress.Options{
		Ingest: &eventlog.Ingestor{Store: st}, Secrets: []string{secretOld},
		SendGrid: sg, Twilio: tw, PublicBaseURL: publicBaseURL + "/",
		Metrics: observability.NewIngressMetrics(reg), Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &providerFixture{fixture: &fixture{t: t, st: st, srv: srv}, sgKey: key}
}

// sendGridSigned signs the body as SendGrid documents it: ECDSA P-256 over SHA-256 of the
// timestamp header followed by the raw payload, ASN.1 DER, base64.
func (f *providerFixture) sendGridSigned(body []byte, key *ecdsa.PrivateKey) http.Header {
	ts := fmt.Sprint(time.Now().Unix())
	h := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		f.t.Fatal(err)
	}
	hd := http.Header{}
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
	hd.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
	return hd
}

// twilioSigned signs a form as Twilio documents it: HMAC-SHA1 with the auth token of the
// full URL followed by each POST parameter's name and value, sorted by name, base64.
func twilioSigned(t *testing.T, fullURL string, form url.Values, token string) http.Header {
	t.Helper()
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range names {
		b.WriteString(k + form.Get(k))
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return h
}

// send stores a customer and the send of step 1 of their invoice on a channel, as the
// send activity leaves it after the provider's answer (status).
func (f *providerFixture) send(n int, channel, status string) string {
	f.t.Helper()
	ctx := context.Background()
	cus, inv := fmt.Sprintf("cus_%d", n), fmt.Sprintf("inv_%d", n)
	c := postgres.Customer{CustomerID: cus, Email: fmt.Sprintf("c%d@example.com", n), Phone: "+14155552671",
		EmailConsentSet: ptr(true), SMSConsentSet: ptr(true), UpdatedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := f.st.UpsertCustomer(ctx, c); err != nil {
		f.t.Fatal(err)
	}
	wf := "dunning-" + inv
	key := fmt.Sprintf("%s/step-1/%s", wf, channel)
	if _, _, err := f.st.ReserveSend(ctx, postgres.Reservation{Key: key, WorkflowID: wf, Step: 1, Channel: channel,
		CustomerID: cus, InvoiceID: inv, Body: "Please pay."}); err != nil {
		f.t.Fatal(err)
	}
	var err error
	switch status {
	case postgres.SendSent:
		err = f.st.CompleteSend(ctx, key, postgres.SendSent, "msg_"+inv)
	case postgres.SendReconcile:
		err = f.st.ReconcileSend(ctx, key, "sendgrid: HTTP 502")
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return key
}

func ptr[T any](v T) *T { return &v }

func (f *providerFixture) status(key string) postgres.ProviderStatus {
	f.t.Helper()
	p, err := f.st.GetProviderStatus(context.Background(), key)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *providerFixture) customer(id string) postgres.Customer {
	f.t.Helper()
	c, err := f.st.GetCustomer(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *providerFixture) count(table string) int {
	f.t.Helper()
	var n int
	if err := f.st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SendGrid's documented batch (every event type Recoup maps) is recorded and applied: the
// send whose 502 left its outcome unknown is settled by its events, the hard bounce and the
// drop mark those addresses undeliverable (the blocked one does not), the spam report and
// the group unsubscribe are opt-outs in the consent ledger and the event log, mail Recoup
// did not send is ignored; the same batch again is all duplicates.
func TestSendGridEventBatchIsRecordedAndApplied(t *testing.T) {
	f := newProviderFixture(t)
	k1 := f.send(1, "email", postgres.SendReconcile)
	f.send(2, "email", postgres.SendSent)
	f.send(3, "email", postgres.SendSent)
	f.send(4, "email", postgres.SendSent)
	f.send(5, "email", postgres.SendSent)
	body := readTestdata(t, "sendgrid_events.json")
	code, _ := f.post("/v1/providers/sendgrid/events", f.sendGridSigned(body, f.sgKey), body)
	if code != http.StatusOK {
		t.Fatalf("answer %d, want 200", code)
	}
	if n := f.count("provider_events"); n != 10 {
		t.Fatalf("provider_events holds %d rows, want the 10 events that name a send", n)
	}
	if p := f.status(k1); p.Status != postgres.SendSent || p.Provider != recoup.DeliverySpamReport || p.Evidence == "" {
		t.Errorf("send 1 = %+v, want settled as sent by evidence, provider status spam_report", p)
	}
	for id, want := range map[string]bool{"cus_2": true, "cus_3": false, "cus_4": true} {
		if got := f.customer(id).EmailUndeliverable != ""; got != want {
			t.Errorf("%s email undeliverable = %v, want %v (%q)", id, got, want, f.customer(id).EmailUndeliverable)
		}
	}
	if c := f.customer("cus_2"); strings.Contains(c.EmailUndeliverable, "@") {
		t.Errorf("the stored reason carries an address: %q", c.EmailUndeliverable)
	}
	for _, id := range []string{"cus_1", "cus_5"} {
		if c := f.customer(id); c.EmailConsent || !c.SMSConsent {
			t.Errorf("%s consent email %v sms %v, want the email opt-out only", id, c.EmailConsent, c.SMSConsent)
		}
	}
	if n := f.rows(); n != 2 {
		t.Errorf("event log holds %d events, want the 2 opt-outs for the runs", n)
	}
	code, _ = f.post("/v1/providers/sendgrid/events", f.sendGridSigned(body, f.sgKey), body)
	if code != http.StatusOK || f.count("provider_events") != 10 || f.rows() != 2 {
		t.Errorf("the redelivered batch: answer %d, %d provider events, %d events; want 200 and nothing new",
			code, f.count("provider_events"), f.rows())
	}
}

// Twilio's status callbacks, signed over the URL the public sees (the proxy's), settle and
// mark the send: delivered; undelivered 30006 (a landline) marks the number undeliverable;
// failed 21610 (the recipient replied STOP) is an opt-out of SMS.
func TestTwilioStatusCallbacksBehindAProxy(t *testing.T) {
	f := newProviderFixture(t)
	keys := map[string]string{
		"twilio_status_delivered.form":         f.send(6, "sms", postgres.SendReconcile),
		"twilio_status_undelivered_30006.form": f.send(7, "sms", postgres.SendSent),
		"twilio_status_failed_21610.form":      f.send(8, "sms", postgres.SendSent),
	}
	for file, key := range keys {
		body := readTestdata(t, file)
		form, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatal(err)
		}
		path := "/v1/providers/twilio/status?idempotency_key=" + url.QueryEscape(key)
		h := twilioSigned(t, publicBaseURL+path, form, twilioToken)
		for range 2 { // Twilio retries: the second is a duplicate
			if code, r := f.post(path, h, body); code != http.StatusOK {
				t.Fatalf("%s: answer %d %+v, want 200", file, code, r)
			}
		}
	}
	if p := f.status(keys["twilio_status_delivered.form"]); p.Status != postgres.SendSent || p.Provider != recoup.DeliveryDelivered {
		t.Errorf("delivered: %+v, want sent, delivered", p)
	}
	if c := f.customer("cus_7"); c.SMSUndeliverable == "" || !strings.Contains(c.SMSUndeliverable, "30006") {
		t.Errorf("30006: sms undeliverable %q, want marked with the code", c.SMSUndeliverable)
	}
	if c := f.customer("cus_8"); c.SMSConsent || !c.EmailConsent || c.SMSUndeliverable != "" {
		t.Errorf("21610: consent email %v sms %v, undeliverable %q; want the sms opt-out only", c.EmailConsent, c.SMSConsent, c.SMSUndeliverable)
	}
	if n := f.count("provider_events"); n != 3 {
		t.Errorf("provider_events holds %d rows, want 3", n)
	}
}

// A request whose signature does not verify is refused with 401 and a reason, and nothing
// is recorded: SendGrid signed with another key or without its headers; Twilio signed with
// another token, or over the internal URL instead of the public one.
func TestProviderWebhooksRefuseBadSignatures(t *testing.T) {
	f := newProviderFixture(t)
	key := f.send(1, "email", postgres.SendSent)
	body := []byte(`[{"event":"delivered","sg_event_id":"x1","timestamp":1795946400,"idempotency_key":"` + key + `"}]`)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noHeaders := http.Header{}
	noHeaders.Set("Content-Type", "application/json")
	tampered := f.sendGridSigned(body, f.sgKey)
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}
	path := "/v1/providers/twilio/status?idempotency_key=" + url.QueryEscape(key)
	cases := []struct {
		name, path string
		h          http.Header
		body       []byte
		want       string
	}{
		{"sendgrid other key", "/v1/providers/sendgrid/events", f.sendGridSigned(body, other), body, "does not verify"},
		{"sendgrid no headers", "/v1/providers/sendgrid/events", noHeaders, body, "missing X-Twilio-Email-Event-Webhook-Signature"},
		{"sendgrid body changed", "/v1/providers/sendgrid/events", tampered, bytes.Replace(body, []byte("delivered"), []byte("bounce"), 1), "does not verify"},
		{"twilio other token", path, twilioSigned(t, publicBaseURL+path, form, "0000000000000000"), []byte(form.Encode()), "X-Twilio-Signature does not match"},
		{"twilio internal URL", path, twilioSigned(t, f.srv.URL+path, form, twilioToken), []byte(form.Encode()), "RECOUP_PUBLIC_BASE_URL"},
	}
	for _, c := range cases {
		code, r := f.post(c.path, c.h, c.body)
		if code != http.StatusUnauthorized || !strings.Contains(r.Error, c.want) {
			t.Errorf("%s: answer %d %q, want 401 saying %q", c.name, code, r.Error, c.want)
		}
	}
	if n := f.count("provider_events"); n != 0 {
		t.Errorf("provider_events holds %d rows after refused requests, want 0", n)
	}
}

// 2xx only once stored: with the event log unavailable the provider is told 503 (and
// retries), never 200.
func TestProviderEventsAnswer503UntilStored(t *testing.T) {
	f := newProviderFixture(t)
	key := f.send(1, "email", postgres.SendSent)
	body := []byte(`[{"event":"delivered","sg_event_id":"x1","timestamp":1795946400,"idempotency_key":"` + key + `"}]`)
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}
	path := "/v1/providers/twilio/status?idempotency_key=" + url.QueryEscape(key)
	sgHeaders, twHeaders := f.sendGridSigned(body, f.sgKey), twilioSigned(t, publicBaseURL+path, form, twilioToken)
	f.st.Close()
	if code, r := f.post("/v1/providers/sendgrid/events", sgHeaders, body); code != http.StatusServiceUnavailable || r.Status != "unavailable" {
		t.Errorf("sendgrid with the log down: answer %d %+v, want 503", code, r)
	}
	if code, r := f.post(path, twHeaders, []byte(form.Encode())); code != http.StatusServiceUnavailable {
		t.Errorf("twilio with the log down: answer %d %+v, want 503", code, r)
	}
}
