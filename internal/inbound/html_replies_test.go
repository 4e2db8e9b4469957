package inbound_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/inbound"
)

// Regression (break test): an HTML-only reply (no text part) is read from its HTML, not
// classified on the subject line Recoup itself wrote.
func TestAnHTMLOnlyEmailReplyKeepsTheCustomersWords(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range map[string]string{
		"from": "Ada <ada@example.com>", "subject": "Re: Your payment for in_42 did not go through",
		"headers": "Message-Id: <html-only@mail.example.com>\r\nFrom: ada@example.com\r\n",
		"html":    "<p>I dispute this charge, I never ordered it.</p>",
		"dkim":    "{@example.com : pass}", "SPF": "pass", "envelope": `{"from":"ada@example.com"}`,
	} {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	req := httptest.NewRequest(http.MethodPost, inbound.SendGridInboundPath+"/"+secret, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || len(rec.got) != 1 {
		t.Fatalf("answered %d %q, recorded %+v", w.Code, w.Body, rec.got)
	}
	if !strings.Contains(rec.got[0].Text, "dispute") {
		t.Fatalf("recorded text %q: the customer's dispute is gone", rec.got[0].Text)
	}
}

// Regression (break test): a reply whose HTML part carries inline (data: URI) images, well
// under the 30 MB cap, is recorded (Go.s multipart limit on form fields refused it).
func TestAnEmailReplyWithInlineImagesIsRecorded(t *testing.T) {
	rec := &recorder{}
	h := server(t, rec)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range map[string]string{
		"from": "Ada <ada@example.com>", "subject": "Re: in_42", "text": "I paid yesterday, receipt below",
		"headers": "Message-Id: <big@mail.example.com>\r\n",
		"html":    `<img src="data:image/png;base64,` + strings.Repeat("A", 12<<20) + `">`,
		"dkim":    "{@example.com : pass}",
	} {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	req := httptest.NewRequest(http.MethodPost, inbound.SendGridInboundPath+"/"+secret, &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || len(rec.got) != 1 {
		t.Fatalf("a %d MB post answered %d %.120q; recorded %d", b.Len()>>20, w.Code, w.Body, len(rec.got))
	}
}
