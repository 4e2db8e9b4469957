// Package inbound answers the providers' inbound webhooks: customers' replies by SMS
// (Twilio, POST /v1/providers/twilio/inbound, routed and verified by the ingress with the one
// Twilio verifier, twilio.RequestValidator, over the public URL, then handed to HandleTwilio)
// and by email (SendGrid Inbound Parse, POST /v1/providers/sendgrid/inbound/{secret},
// verified by a secret in the path or as the basic-auth password, compared in constant
// time). Each reply is masked, an SMS's carrier keyword (STOP, START, HELP in every shipped
// language) detected by code (an email is free text: carrier keywords are SMS rules), and
// recorded in PostgreSQL before the provider gets its 2xx; eventlog delivers it to the
// customer's open runs. An email whose From domain neither SPF (aligned envelope) nor DKIM
// vouches for is recorded as unverified and matched to no customer. The sender's address
// only finds the customer: it is never logged or stored.
package inbound

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/html"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/model/replies"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// Routes of the inbound webhooks.
const (
	TwilioInboundPath   = ingress.TwilioInboundPath
	SendGridInboundPath = "/v1/providers/sendgrid/inbound"
)

// Size limits: an Inbound Parse post carries attachments (30 MB at most, SendGrid's own
// limit), which are read to disk and dropped. (The ingress bounds Twilio's form.)
const (
	maxSendGridBody = 30 << 20
	minSecretLength = 32
)

// Recorder records and delivers a reply (eventlog.Ingestor).
type Recorder interface {
	AcceptReply(ctx context.Context, r postgres.InboundReply) (postgres.RecordedReply, error)
}

// Options configure the handlers. A provider without its verification configured answers
// 404 on its route (Twilio's: the ingress, without TWILIO_AUTH_TOKEN and
// RECOUP_PUBLIC_BASE_URL).
type Options struct {
	Ingest Recorder
	// TwilioAccountSID (TWILIO_ACCOUNT_SID), when set, must be the form's AccountSid.
	TwilioAccountSID string
	// SendGridSecret is SENDGRID_INBOUND_SECRET: the last path segment of the Inbound Parse
	// URL, or its basic-auth password. At least 32 characters.
	SendGridSecret string
	Logger         *slog.Logger
	Now            func() time.Time
}

// Server holds the inbound handlers.
type Server struct {
	o Options
}

// New checks the options. Errors name the variable at fault.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o}
	if o.SendGridSecret != "" && len(o.SendGridSecret) < minSecretLength {
		return nil, fmt.Errorf("SENDGRID_INBOUND_SECRET: at least %d characters (it is all that authenticates Inbound Parse)", minSecretLength)
	}
	return s, nil
}

// Handlers are the routes for ingress.Options.Extra (SendGrid Inbound Parse; Twilio's
// route is the ingress's, with HandleTwilio as ingress.Options.TwilioInbound).
func (s *Server) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		"POST " + SendGridInboundPath:               http.HandlerFunc(s.handleSendGrid),
		"POST " + SendGridInboundPath + "/{secret}": http.HandlerFunc(s.handleSendGrid),
	}
}

var messageSidRe = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)

// emptyTwiML answers Twilio without a reply message.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// HandleTwilio records an inbound SMS whose form the ingress verified (X-Twilio-Signature,
// ingress.Options.TwilioInbound) and answers Twilio with empty TwiML.
func (s *Server) HandleTwilio(w http.ResponseWriter, r *http.Request, f url.Values) {
	sid := f.Get("MessageSid")
	switch {
	case !messageSidRe.MatchString(sid):
		http.Error(w, "MessageSid: want SM or MM and 32 hex digits", http.StatusBadRequest)
		return
	case f.Get("From") == "":
		http.Error(w, "From: required", http.StatusBadRequest)
		return
	case s.o.TwilioAccountSID != "" && f.Get("AccountSid") != s.o.TwilioAccountSID:
		http.Error(w, "AccountSid is not this account's", http.StatusForbidden)
		return
	}
	body := f.Get("Body")
	in := postgres.InboundReply{EventID: "reply:twilio:" + sid, Provider: "twilio", Channel: string(recoup.ChannelSMS),
		Sender: strings.TrimSpace(f.Get("From")), Keyword: string(replies.DetectKeyword(body)),
		Text: replies.Mask(body, recoup.MaxReplyText), ReceivedAt: s.o.Now().UTC()}
	if !s.record(w, r.Context(), in) {
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write([]byte(emptyTwiML))
}

func (s *Server) handleSendGrid(w http.ResponseWriter, r *http.Request) {
	if s.o.SendGridSecret == "" {
		http.Error(w, "SendGrid Inbound Parse is not configured (SENDGRID_INBOUND_SECRET)", http.StatusNotFound)
		return
	}
	given := r.PathValue("secret")
	if _, pass, ok := r.BasicAuth(); ok && given == "" {
		given = pass
	}
	if subtle.ConstantTimeCompare([]byte(given), []byte(s.o.SendGridSecret)) != 1 {
		http.Error(w, "not found", http.StatusNotFound) // says nothing about the secret
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSendGridBody)
	// SendGrid posts text, html and headers as form fields, not files: the memory allowed is
	// the whole (capped) body, so a reply whose HTML carries inline images is not refused.
	if err := r.ParseMultipartForm(maxSendGridBody); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("the post is larger than %d MB", maxSendGridBody>>20), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "the body is not multipart/form-data (Inbound Parse, not the raw MIME option): "+err.Error(), http.StatusBadRequest)
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	in, problem := parseEmail(r.MultipartForm.Value)
	if problem != "" {
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	in.ReceivedAt = s.o.Now().UTC()
	if s.record(w, r.Context(), in) {
		w.WriteHeader(http.StatusOK)
	}
}

// parseEmail builds the reply of an Inbound Parse post: the customer's own words (quoted
// text dropped), the sender's address, and an id from the Message-ID header (or, without
// one, from all the headers) so that SendGrid's retries are duplicates.
func parseEmail(v map[string][]string) (postgres.InboundReply, string) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	from, err := mail.ParseAddress(get("from"))
	if err != nil {
		return postgres.InboundReply{}, "from: not an email address: " + err.Error()
	}
	headers := get("headers")
	id := ""
	if msg, err := mail.ReadMessage(strings.NewReader(strings.TrimRight(headers, "\r\n") + "\r\n\r\n")); err == nil {
		id = strings.TrimSpace(msg.Header.Get("Message-Id"))
	}
	if id == "" {
		id = headers + "\x00" + get("subject") + "\x00" + get("text")
	}
	sum := sha256.Sum256([]byte(id))
	text := replies.StripQuoted(get("text"))
	if text == "" { // an HTML-only reply: its words, not the subject Recoup wrote
		text = replies.StripQuoted(htmlText(get("html")))
	}
	if text == "" {
		text = strings.TrimSpace(get("subject"))
	}
	// Carrier keywords (STOP, START, …) are SMS rules: an email reply is free text for
	// classification only (email unsubscribes come from SendGrid's unsubscribe events).
	in := postgres.InboundReply{EventID: "reply:sendgrid:" + hex.EncodeToString(sum[:16]), Provider: "sendgrid",
		Channel: string(recoup.ChannelEmail), Sender: from.Address, Text: replies.Mask(text, recoup.MaxReplyText)}
	if !senderVerified(from.Address, get("SPF"), get("dkim"), get("envelope")) {
		in.Sender, in.Unverified = "", true // recorded, but never the customer's reply
	}
	return in, ""
}

// senderVerified reports whether SendGrid's verdicts vouch for the From address's domain: a
// DKIM pass for that domain, or an SPF pass for an envelope sender of that domain (SPF
// checks the envelope, which a spoofer chooses). The From header alone is what anyone can
// write.
func senderVerified(from, spf, dkim, envelope string) bool {
	domain := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:])
	// dkim: "{@example.com : pass}" or "{@a.example : pass, @b.example : fail}".
	for _, part := range strings.Split(strings.Trim(strings.TrimSpace(dkim), "{}"), ",") {
		d, verdict, ok := strings.Cut(part, ":")
		if ok && strings.EqualFold(strings.TrimPrefix(strings.TrimSpace(d), "@"), domain) &&
			strings.EqualFold(strings.TrimSpace(verdict), "pass") {
			return true
		}
	}
	if !strings.EqualFold(strings.TrimSpace(spf), "pass") {
		return false
	}
	var env struct {
		From string `json:"from"`
	}
	if json.Unmarshal([]byte(envelope), &env) != nil || !strings.Contains(env.From, "@") {
		return false
	}
	return strings.EqualFold(env.From[strings.LastIndexByte(env.From, '@')+1:], domain)
}

// record stores the reply; false when it answered an error (nothing stored: the provider
// retries). A reply stored but not yet delivered is answered 2xx: the relay delivers it.
func (s *Server) record(w http.ResponseWriter, ctx context.Context, in postgres.InboundReply) bool {
	rec, err := s.o.Ingest.AcceptReply(ctx, in)
	switch {
	case errors.Is(err, eventlog.ErrReplyNotDelivered):
		s.o.Logger.Warn("reply recorded; delivery left to the relay", "event_id", in.EventID, "error", err)
	case err != nil:
		s.o.Logger.Error("reply not recorded: the log is unavailable", "event_id", in.EventID, "error", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the reply log is unavailable; nothing was recorded, retry later", http.StatusServiceUnavailable)
		return false
	}
	s.o.Logger.Info("reply recorded", "event_id", in.EventID, "provider", in.Provider, "keyword", in.Keyword,
		"customer_matched", rec.CustomerID != "", "unverified", in.Unverified, "duplicate", rec.Duplicate, "consent_changed", rec.ConsentChanged)
	return true
}

// htmlText is the visible text of an HTML reply: text nodes outside head, script, style and
// quoted blocks (blockquote), with block elements and line breaks as new lines.
func htmlText(doc string) string {
	var b strings.Builder
	z := html.NewTokenizer(strings.NewReader(doc))
	skip := 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return strings.TrimSpace(b.String())
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "head", "script", "style", "blockquote":
				if tt == html.StartTagToken {
					skip++
				}
			case "br", "p", "div", "li", "tr":
				b.WriteByte('\n')
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "head", "script", "style", "blockquote":
				if skip > 0 {
					skip--
				}
			case "p", "div", "li", "tr":
				b.WriteByte('\n')
			}
		}
	}
}
