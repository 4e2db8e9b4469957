package inbound_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/inbound"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/twilio"
)

type recorder struct {
	got []postgres.InboundReply
	err error
}

func (r *recorder) AcceptReply(_ context.Context, in postgres.InboundReply) (postgres.RecordedReply, error) {
	if r.err != nil {
		return postgres.RecordedReply{}, r.err
	}
	r.got = append(r.got, in)
	return postgres.RecordedReply{EventID: in.EventID, CustomerID: "cus_1"}, nil
}

const (
	token  = "0123456789abcdef0123456789abcdef"
	base   = "https://recoup.example.com"
	secret = "sg-inbound-secret-0123456789abcdef"
)

// server routes the inbound handlers as `starter serve` does: Twilio's through the ingress,
// which verifies X-Twilio-Signature with twilio.RequestValidator (nil tw: not configured).
func server(t *testing.T, rec *recorder) http.Handler {
	t.Helper()
	tw, err := twilio.NewRequestValidator(token)
	if err != nil {
		t.Fatal(err)
	}
	return serverWith(t, rec, tw)
}

func serverWith(t *testing.T, rec *recorder, tw ingress.TwilioVerifier) http.Handler {
	t.Helper()
	s, err := inbound.New(inbound.Options{Ingest: rec,
		TwilioAccountSID: "AC00000000000000000000000000000001", SendGridSecret: secret,
		Now: func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Options{Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		Twilio: tw, PublicBaseURL: base + "/", TwilioInbound: s.HandleTwilio, Extra: s.Handlers()})
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

// twilioSignature is Twilio's documented algorithm (HMAC-SHA1 over the URL followed by
// each parameter name and value, sorted by name, base64), computed independently of
// twilio-go, whose RequestValidator the handler uses.
func twilioSignature(u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(u)
	for _, k := range keys {
		b.WriteString(k + form.Get(k))
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// A documented inbound-SMS webhook body (Twilio's "TwiML for Programmable Messaging"
// request parameters).
func twilioForm(body string) url.Values {
	return url.Values{
		"MessageSid": {"SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"}, "SmsSid": {"SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"},
		"AccountSid": {"AC00000000000000000000000000000001"}, "MessagingServiceSid": {"MG00000000000000000000000000000001"},
		"From": {"+14155552671"}, "To": {"+14155550100"}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {"1"},
		"SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"}, "FromCountry": {"US"}, "FromState": {"CA"},
	}
}

func postTwilio(t *testing.T, h http.Handler, form url.Values, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080"+inbound.TwilioInboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestTwilioInboundIsVerifiedOverThePublicURLAndRecordedMasked(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	form := twilioForm("I'll pay on the 15th, call me on +1 415 555 2671")
	w := postTwilio(t, h, form, twilioSignature(base+inbound.TwilioInboundPath, form))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<Response></Response>") || w.Header().Get("Content-Type") != "text/xml" {
		t.Fatalf("answer %d %q", w.Code, w.Body)
	}
	if len(rec.got) != 1 {
		t.Fatalf("recorded %d replies", len(rec.got))
	}
	got := rec.got[0]
	if got.EventID != "reply:twilio:SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d" || got.Channel != "sms" || got.Sender != "+14155552671" ||
		got.Keyword != "" || strings.Contains(got.Text, "555") || !strings.Contains(got.Text, "15th") {
		t.Fatalf("recorded %+v", got)
	}
}

func TestTwilioInboundWithABadSignatureIsRefusedAndNothingRecorded(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	form := twilioForm("STOP")
	for name, sig := range map[string]string{
		"none":                     "",
		"signed for the listener":  twilioSignature("http://10.0.0.5:8080"+inbound.TwilioInboundPath, form),
		"signed for another token": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	} {
		if w := postTwilio(t, h, form, sig); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: answered %d, want 401", name, w.Code)
		}
	}
	tampered := twilioForm("STOP")
	sig := twilioSignature(base+inbound.TwilioInboundPath, tampered)
	tampered.Set("Body", "START")
	if w := postTwilio(t, h, tampered, sig); w.Code != http.StatusUnauthorized {
		t.Errorf("a changed body answered %d, want 401", w.Code)
	}
	if len(rec.got) != 0 {
		t.Fatalf("recorded %+v", rec.got)
	}
}

func TestTwilioStopKeywordIsDetectedByCode(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	for _, body := range []string{" Stop ", "BAJA", "stopp"} {
		form := twilioForm(body)
		postTwilio(t, h, form, twilioSignature(base+inbound.TwilioInboundPath, form))
	}
	for _, r := range rec.got {
		if r.Keyword != "stop" {
			t.Errorf("%q: keyword %q", r.Text, r.Keyword)
		}
	}
}

func TestTwilioInboundWhenTheLogIsDownAnswers503(t *testing.T) {
	h := server(t, &recorder{err: errors.New("connection refused")})
	form := twilioForm("hello")
	if w := postTwilio(t, h, form, twilioSignature(base+inbound.TwilioInboundPath, form)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("answered %d", w.Code)
	}
}

// sendGridPost is an Inbound Parse post (multipart/form-data, the parsed fields SendGrid
// documents: headers, from, to, subject, text, html, envelope, …).
func sendGridPost(t *testing.T, path, text, messageID string) *http.Request {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	headers := "Received: from mail.example.com\nMessage-ID: " + messageID + "\nFrom: Ada Lovelace <ada@example.com>\nSubject: Re: Your payment\n"
	for k, v := range map[string]string{"headers": headers, "from": "Ada Lovelace <ada@example.com>", "to": "billing@recoup.example.com",
		"subject": "Re: Your payment", "text": text, "html": "<p>" + text + "</p>", "envelope": `{"to":["billing@recoup.example.com"],"from":"ada@example.com"}`,
		"charsets": `{"to":"UTF-8","from":"UTF-8","subject":"UTF-8","text":"UTF-8"}`, "SPF": "pass", "sender_ip": "192.0.2.1"} {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("attachment1", "invoice.pdf")
	_, _ = fw.Write([]byte("%PDF-1.4"))
	_ = mw.Close()
	req := httptest.NewRequest(http.MethodPost, path, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

func TestSendGridInboundParseWithThePathSecretRecordsTheCustomersOwnWords(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	text := "Ya pagué ayer\n\nEl mar, 1 dic 2026, Recoup <billing@recoup.example.com> escribió:\n> Su pago no se realizó"
	for range 2 { // SendGrid retries: the same Message-ID, the same event id
		w := httptest.NewRecorder()
		h.ServeHTTP(w, sendGridPost(t, inbound.SendGridInboundPath+"/"+secret, text, "<CAF=abc@mail.example.com>"))
		if w.Code != http.StatusOK {
			t.Fatalf("answered %d %q", w.Code, w.Body)
		}
	}
	if len(rec.got) != 2 || rec.got[0].EventID != rec.got[1].EventID || !strings.HasPrefix(rec.got[0].EventID, "reply:sendgrid:") {
		t.Fatalf("recorded %+v", rec.got)
	}
	if got := rec.got[0]; got.Text != "Ya pagué ayer" || got.Sender != "ada@example.com" || got.Channel != "email" {
		t.Fatalf("recorded %+v", got)
	}
}

func TestSendGridInboundParseRefusesAWrongSecretAndAcceptsBasicAuth(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, sendGridPost(t, inbound.SendGridInboundPath+"/not-the-secret", "hi", "<a@b>"))
	if w.Code != http.StatusNotFound {
		t.Fatalf("wrong secret answered %d", w.Code)
	}
	req := sendGridPost(t, inbound.SendGridInboundPath, "STOP", "<b@b>")
	req.SetBasicAuth("sendgrid", secret)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || len(rec.got) != 1 || rec.got[0].Keyword != "" {
		t.Fatalf("basic auth answered %d, recorded %+v", w.Code, rec.got)
	}
}

func TestInboundRefusesAShortSendGridSecretAndTwilioWithoutAPublicURLAnswers404(t *testing.T) {
	if _, err := inbound.New(inbound.Options{SendGridSecret: "short"}); err == nil || !strings.Contains(err.Error(), "SENDGRID_INBOUND_SECRET") {
		t.Fatalf("err = %v", err)
	}
	// Without RECOUP_PUBLIC_BASE_URL, starter builds no Twilio verifier.
	w := postTwilio(t, serverWith(t, &recorder{}, nil), twilioForm("hi"), "")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "RECOUP_PUBLIC_BASE_URL") {
		t.Fatalf("answered %d %q", w.Code, w.Body)
	}
}
