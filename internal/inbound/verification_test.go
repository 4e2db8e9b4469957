package inbound_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/recoup-dunning/recoup/internal/inbound"
)

// the From header of an email is trusted as is. SendGrid posts its SPF and DKIM
// verdicts; an email that fails both (anyone spoofing ada@example.com to the inbound domain)
// is still recorded as Ada's reply: "I'll pay on the 30th" pauses her dunning, "STOP"
// withdraws her email consent, and repeated spoofs keep the run paused.
func TestSpoofedEmailFailingSPFAndDKIMIsNotTheCustomersReply(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	headers := "Message-ID: <spoof@attacker.example>\nFrom: Ada Lovelace <ada@example.com>\nSubject: Re: Your payment\n"
	for k, v := range map[string]string{"headers": headers, "from": "Ada Lovelace <ada@example.com>", "to": "billing@recoup.example.com",
		"subject": "Re: Your payment", "text": "STOP", "envelope": `{"to":["billing@recoup.example.com"],"from":"x@attacker.example"}`,
		"SPF": "fail", "dkim": "{@example.com : fail}", "sender_ip": "203.0.113.9"} {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	req := httptest.NewRequest(http.MethodPost, inbound.SendGridInboundPath+"/"+secret, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	for _, got := range rec.got {
		if got.Sender == "ada@example.com" {
			t.Fatalf("a spoofed email (SPF fail, DKIM fail) was recorded as ada@example.com's reply: %+v", got)
		}
	}
}

// carrier keywords are SMS rules, applied here to email. A customer answering a
// dunning email with "Cancel" (cancel my subscription: billing and support must hear it) is
// recorded as an email opt-out that no run or person ever sees as text; "Yes" re-grants email
// consent the customer withdrew elsewhere.
func TestCarrierKeywordsDoNotApplyToEmail(t *testing.T) {
	for _, text := range []string{"Cancel", "Yes", "End", "Info"} {
		rec := &recorder{}
		h := server(t, rec)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, sendGridPost(t, inbound.SendGridInboundPath+"/"+secret, text, "<kw-"+text+"@mail.example.com>"))
		if len(rec.got) != 1 {
			t.Fatalf("%q: answered %d, recorded %d", text, w.Code, len(rec.got))
		}
		if kw := rec.got[0].Keyword; kw != "" {
			t.Errorf("email reply %q treated as the carrier keyword %q", text, kw)
		}
	}
}
