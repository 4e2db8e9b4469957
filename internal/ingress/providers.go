package ingress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// The providers' webhooks: SendGrid's Event Webhook and Twilio's status callbacks report
// what became of each message, named by the idempotency key the send carried to them. Each
// event is recorded (and applied) in PostgreSQL before the answer is 2xx; a redelivered
// event is a harmless duplicate. The signatures are checked by the providers' own code,
// which lives in the adapters (internal/sendgrid, internal/twilio): the ingest path imports
// no provider SDK, so starter passes the verifiers in.

// SendGridVerifier checks the signature of an Event Webhook request (sendgrid.EventVerifier).
type SendGridVerifier interface {
	Verify(body []byte, h http.Header) error
}

// TwilioVerifier checks X-Twilio-Signature (twilio.RequestValidator): url is the URL the
// public requested, params the form parameters.
type TwilioVerifier interface {
	Validate(url string, params map[string]string, signature string) error
}

// TwilioFormHandler answers a Twilio webhook whose form verifyTwilio verified.
type TwilioFormHandler func(w http.ResponseWriter, r *http.Request, form url.Values)

// TwilioInboundPath takes customers' SMS replies (Twilio's messaging webhook).
const TwilioInboundPath = "/v1/providers/twilio/inbound"

// maxProviderBody bounds one provider request (SendGrid posts batches of events).
const maxProviderBody = 8 << 20

// idempotencyKeyField names the key in SendGrid's custom_args (flattened into each event)
// and in Twilio's status callback URL (internal/sendgrid.IdempotencyKeyArg,
// internal/twilio.IdempotencyKeyParam).
const idempotencyKeyField = "idempotency_key"

type providerAnswer struct {
	Status     string `json:"status"`
	Recorded   int    `json:"recorded"`
	Duplicates int    `json:"duplicates"`
	Ignored    int    `json:"ignored,omitempty"`
	Error      string `json:"error,omitempty"`
}

// sendGridEvent is one element of an Event Webhook batch (the fields Recoup reads; the
// personalization's custom_args arrive as top-level fields).
type sendGridEvent struct {
	Event                string `json:"event"`
	SGEventID            string `json:"sg_event_id"`
	SGMessageID          string `json:"sg_message_id"`
	Timestamp            int64  `json:"timestamp"`
	IdempotencyKey       string `json:"idempotency_key"`
	Type                 string `json:"type"`
	BounceClassification string `json:"bounce_classification"`
	Reason               string `json:"reason"`
	Status               string `json:"status"`
}

func (s *Server) handleSendGrid(w http.ResponseWriter, r *http.Request) {
	if s.sendgrid == nil {
		writeJSON(w, http.StatusNotFound, answer{Status: "rejected", Error: "SendGrid's Event Webhook is not configured (SENDGRID_WEBHOOK_PUBLIC_KEY)"})
		return
	}
	body, ok := s.readProviderBody(w, r, "sendgrid", "application/json")
	if !ok {
		return
	}
	if err := s.sendgrid.Verify(body, r.Header); err != nil {
		s.count("sendgrid", "", "unauthorized")
		writeJSON(w, http.StatusUnauthorized, answer{Status: "rejected", Error: "SendGrid signature: " + err.Error()})
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		s.count("sendgrid", "", "invalid")
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: "the body is not a JSON array of events: " + err.Error()})
		return
	}
	evs, ignored := s.sendGridEvents(r, raw)
	s.recordProviderEvents(w, r, "sendgrid", evs, ignored)
}

// sendGridEvents maps a batch to provider events, in the order they occurred (stable):
// elements without an event id or event type are kept in rejected_events, and those that
// name no idempotency key (mail Recoup did not send) are ignored.
func (s *Server) sendGridEvents(r *http.Request, raw []json.RawMessage) ([]postgres.ProviderEvent, int) {
	var out []postgres.ProviderEvent
	ignored := 0
	for _, b := range raw {
		var e sendGridEvent
		if err := json.Unmarshal(b, &e); err != nil || e.SGEventID == "" || e.Event == "" {
			ignored++
			reason := "SendGrid event without sg_event_id or event"
			if err != nil {
				reason = "SendGrid event is not a JSON object: " + err.Error()
			}
			if rerr := s.ingest.Store.RecordRejected(r.Context(), "sendgrid", reason, jsonOrString(b)); rerr != nil {
				s.log.Warn("could not keep a refused SendGrid event", "error", rerr)
			}
			continue
		}
		if e.IdempotencyKey == "" {
			ignored++
			continue
		}
		out = append(out, mapSendGrid(e, b))
	}
	slices.SortStableFunc(out, func(a, b postgres.ProviderEvent) int { return a.OccurredAt.Compare(b.OccurredAt) })
	return out, ignored
}

// softBounceClasses are SendGrid's bounce classifications that say nothing against the
// address (the message, the sender or the volume was refused).
var softBounceClasses = map[string]bool{"Technical": true, "Content": true, "Reputation": true, "Frequency or Volume Too High": true}

// mapSendGrid maps one SendGrid event (see SendGrid's Event Webhook reference):
// processed → accepted; deferred; delivered; bounce of type "blocked", or classified as a
// technical, content, reputation or volume refusal → soft bounce, otherwise (an invalid or
// unavailable mailbox) → hard bounce, the address undeliverable; dropped for a bounced or
// invalid address → undeliverable, for an unsubscribed or spam-reporting address → an
// opt-out; spamreport, unsubscribe, group_unsubscribe → opt-outs; open, click → engagement.
func mapSendGrid(e sendGridEvent, body []byte) postgres.ProviderEvent {
	pe := postgres.ProviderEvent{Provider: "sendgrid", ProviderEventID: e.SGEventID, IdempotencyKey: e.IdempotencyKey,
		ProviderMessageID: e.SGMessageID, ErrorCode: e.Status, Reason: redactEmail(e.Reason),
		OccurredAt: time.Unix(e.Timestamp, 0).UTC(), Body: body}
	if e.Timestamp == 0 {
		pe.OccurredAt = time.Now().UTC()
	}
	switch e.Event {
	case "processed":
		pe.Kind = recoup.DeliveryAccepted
	case "deferred":
		pe.Kind = recoup.DeliveryDeferred
	case "delivered":
		pe.Kind = recoup.DeliveryDelivered
	case "bounce":
		pe.Kind = recoup.DeliveryBounced
		if e.Type == "blocked" || softBounceClasses[e.BounceClassification] {
			pe.Kind = recoup.DeliverySoftBounced
		}
		pe.Unreachable = pe.Kind == recoup.DeliveryBounced
		if e.BounceClassification != "" {
			pe.Reason = strings.TrimSpace(e.BounceClassification + ": " + pe.Reason)
		}
	case "dropped":
		pe.Kind = recoup.DeliveryDropped
		switch e.Reason {
		case "Unsubscribed Address", "Spam Reporting Address":
			pe.OptOut = true
		case "Bounced Address", "Invalid":
			pe.Unreachable = true
		}
	case "spamreport":
		pe.Kind, pe.OptOut = recoup.DeliverySpamReport, true
	case "unsubscribe", "group_unsubscribe":
		pe.Kind, pe.OptOut = recoup.DeliveryUnsubscribed, true
	case "open":
		pe.Kind = recoup.DeliveryOpened
	case "click":
		pe.Kind = recoup.DeliveryClicked
	default: // e.g. group_resubscribe: kept as evidence, changes nothing
		pe.Kind = e.Event
	}
	return pe
}

func (s *Server) handleTwilioStatus(w http.ResponseWriter, r *http.Request) {
	form, ok := s.verifyTwilio(w, r, "twilio")
	if !ok {
		return
	}
	sid, status := form.Get("MessageSid"), form.Get("MessageStatus")
	if sid == "" || status == "" {
		s.count("twilio", "", "invalid")
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: "a status callback needs MessageSid and MessageStatus"})
		return
	}
	params := map[string]string{}
	for k := range form {
		params[k] = form.Get(k)
	}
	body, _ := json.Marshal(params)
	pe := mapTwilio(sid, status, form.Get("ErrorCode"), body)
	pe.IdempotencyKey = r.URL.Query().Get(idempotencyKeyField)
	ignored := 0
	if pe.IdempotencyKey == "" {
		ignored = 1
	}
	var evs []postgres.ProviderEvent
	if ignored == 0 {
		evs = append(evs, pe)
	}
	s.recordProviderEvents(w, r, "twilio", evs, ignored)
}

// handleTwilioInbound verifies an inbound SMS like a status callback, then hands its form
// to the replies' handler (internal/inbound), which records it.
func (s *Server) handleTwilioInbound(w http.ResponseWriter, r *http.Request) {
	if s.twilioInbound == nil {
		writeJSON(w, http.StatusNotFound, answer{Status: "rejected", Error: "Twilio's inbound messages are not configured (TWILIO_AUTH_TOKEN and RECOUP_PUBLIC_BASE_URL)"})
		return
	}
	form, ok := s.verifyTwilio(w, r, "twilio_inbound")
	if !ok {
		return
	}
	s.twilioInbound(w, r, form)
}

// Twilio error codes that prove the number cannot receive SMS (30003, a handset switched off,
// is temporary and does not count), and the one that says the recipient replied STOP.
var (
	twilioUnreachable = map[string]bool{"21211": true, "21214": true, "21614": true, "30005": true, "30006": true}
	twilioOptedOut    = "21610"
)

// mapTwilio maps one status callback (Twilio's message statuses): accepted, scheduled,
// queued, sending, sent → accepted; delivered; read → opened; undelivered; failed. An
// invalid, unknown or landline number (21211, 21214, 21614, 30005, 30006) marks the number
// undeliverable; 21610 (the recipient replied STOP) is an opt-out of SMS. Twilio's callbacks
// carry no event time: the time received stands for it, and a status of a lower rank never
// overwrites a higher one. The event id is MessageSid/MessageStatus (Twilio sends each
// status of a message once, and retries it as the same).
func mapTwilio(sid, status, code string, body []byte) postgres.ProviderEvent {
	pe := postgres.ProviderEvent{Provider: "twilio", ProviderEventID: sid + "/" + status, ProviderMessageID: sid,
		ErrorCode: code, OccurredAt: time.Now().UTC(), Body: body}
	switch status {
	case "accepted", "scheduled", "queued", "sending", "sent":
		pe.Kind = recoup.DeliveryAccepted
	case "delivered":
		pe.Kind = recoup.DeliveryDelivered
	case "read":
		pe.Kind = recoup.DeliveryOpened
	case "undelivered":
		pe.Kind = recoup.DeliveryUndelivered
	case "failed":
		pe.Kind = recoup.DeliveryFailed
	default:
		pe.Kind = status
	}
	pe.Unreachable = twilioUnreachable[code]
	pe.OptOut = code == twilioOptedOut
	return pe
}

// verifyTwilio reads a Twilio webhook's form and checks X-Twilio-Signature against the URL
// the public requested (RECOUP_PUBLIC_BASE_URL + the request's path and query), answering
// 404, 415, 413, 400 or 401 itself. Twilio's other webhooks (inbound messages) use it too.
func (s *Server) verifyTwilio(w http.ResponseWriter, r *http.Request, source string) (form url.Values, ok bool) {
	if s.twilio == nil {
		writeJSON(w, http.StatusNotFound, answer{Status: "rejected", Error: "Twilio's webhooks are not configured (TWILIO_AUTH_TOKEN and RECOUP_PUBLIC_BASE_URL)"})
		return nil, false
	}
	body, ok := s.readProviderBody(w, r, source, "application/x-www-form-urlencoded")
	if !ok {
		return nil, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.count(source, "", "invalid")
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: "the body is not a form: " + err.Error()})
		return nil, false
	}
	params := map[string]string{}
	for k := range form {
		params[k] = form.Get(k)
	}
	if err := s.twilio.Validate(s.publicBaseURL+r.URL.RequestURI(), params, r.Header.Get("X-Twilio-Signature")); err != nil {
		s.count(source, "", "unauthorized")
		writeJSON(w, http.StatusUnauthorized, answer{Status: "rejected", Error: "Twilio signature: " + err.Error()})
		return nil, false
	}
	return form, true
}

// readProviderBody checks the media type and the size limit, answering 415 or 413 itself.
func (s *Server) readProviderBody(w http.ResponseWriter, r *http.Request, source, mediaType string) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != mediaType {
		s.count(source, "", "unsupported_media_type")
		writeJSON(w, http.StatusUnsupportedMediaType, answer{Status: "rejected", Error: "Content-Type must be " + mediaType})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProviderBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		s.count(source, "", "too_large")
		writeJSON(w, http.StatusRequestEntityTooLarge, answer{Status: "rejected", Error: fmt.Sprintf("body larger than %d bytes", maxProviderBody)})
		return nil, false
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: "could not read the body: " + err.Error()})
		return nil, false
	}
	return body, true
}

// recordProviderEvents records the events one by one (each in its own transaction; a
// redelivery after a failure records the rest, the first ones being duplicates) and answers
// 200 only when every one is stored; otherwise 503, so the provider retries the request.
func (s *Server) recordProviderEvents(w http.ResponseWriter, r *http.Request, source string, evs []postgres.ProviderEvent, ignored int) {
	a := providerAnswer{Status: "accepted", Ignored: ignored}
	optOuts := 0
	for i, e := range evs {
		res, err := s.ingest.Store.RecordProviderEvent(r.Context(), e)
		if err != nil {
			s.count(source, e.Kind, "unavailable")
			s.log.Error("provider event not recorded: the event log is unavailable", "source", source,
				"provider_event_id", e.ProviderEventID, "error", err)
			w.Header().Set("Retry-After", "5")
			a.Status, a.Error = "unavailable", fmt.Sprintf("the event log is unavailable; %d of %d events recorded, retry the request (recorded events are duplicates then)", i, len(evs))
			writeJSON(w, http.StatusServiceUnavailable, a)
			return
		}
		if res.Duplicate {
			a.Duplicates++
			s.count(source, e.Kind, "duplicate")
			continue
		}
		a.Recorded++
		s.count(source, e.Kind, "accepted")
		if res.OptOutEventID != "" {
			optOuts++
		}
	}
	if optOuts > 0 && s.relay != nil {
		s.relay.Nudge() // the opt-outs are billing-style events in the log, for the runs
	}
	writeJSON(w, http.StatusOK, a)
}

var emailLike = regexp.MustCompile(`[^\s"'<>(),;:@]+@[^\s"'<>(),;:@]+`)

// redactEmail removes addresses from a provider's reason text.
func redactEmail(s string) string { return emailLike.ReplaceAllString(s, "[redacted]") }

// jsonOrString keeps a refused element as JSON (rejected_events.body is jsonb).
func jsonOrString(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}
