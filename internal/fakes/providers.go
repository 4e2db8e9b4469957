package fakes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// SendGrid is a fake SendGrid v3 Mail Send endpoint (POST /v3/mail/send) for the real
// sendgrid-go client: every request is checked against contracts/sendgrid.yaml (a request
// that breaks it fails the test and is answered 400), recorded, and answered 202 with an
// X-Message-Id of "sg-<idempotency key>" unless told otherwise. Point the client at URL.
type SendGrid struct{ *server }

// NewSendGrid starts a SendGrid fake for the test; it stops when the test ends.
func NewSendGrid(tb testing.TB) *SendGrid {
	tb.Helper()
	return &SendGrid{newServer(tb, "SendGrid", ContractSendGrid, http.StatusAccepted, parseSendGrid, answerSendGrid)}
}

func parseSendGrid(r *Request) {
	_ = json.Unmarshal(r.Body, &r.JSON)
	if ps, ok := r.JSON["personalizations"].([]any); ok && len(ps) > 0 {
		if p, ok := ps[0].(map[string]any); ok {
			if ca, ok := p["custom_args"].(map[string]any); ok {
				r.Key, _ = ca["idempotency_key"].(string)
			}
		}
	}
}

func answerSendGrid(w http.ResponseWriter, req Request, resp Response) {
	status := resp.Status
	if status == 0 {
		status = http.StatusAccepted
	}
	if status/100 == 2 {
		if w.Header().Get("X-Message-Id") == "" {
			w.Header().Set("X-Message-Id", "sg-"+strings.ReplaceAll(req.Key, "/", "-"))
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(resp.Body))
		return
	}
	body := resp.Body
	if body == "" {
		msg := http.StatusText(status)
		if req.Violation != nil {
			msg = req.Violation.Error()
		}
		body = mustJSON(map[string]any{"errors": []any{map[string]any{"message": msg, "field": nil}}})
	}
	writeJSON(w, status, body)
}

// Twilio is a fake Twilio Messages endpoint (POST
// /2010-04-01/Accounts/{AccountSid}/Messages.json) for the real twilio-go client: every
// request is checked against contracts/twilio.yaml, recorded (the idempotency key is read
// from the StatusCallback URL's idempotency_key) and answered 201 with a Message resource
// unless told otherwise. Use TwilioAccountSID as the client's account SID.
type Twilio struct{ *server }

// TwilioAccountSID is a well-formed account SID for clients pointed at the Twilio fake.
const TwilioAccountSID = "AC00000000000000000000000000000000"

// TwilioServiceSID is a well-formed Messaging Service SID.
const TwilioServiceSID = "MG00000000000000000000000000000000"

// NewTwilio starts a Twilio fake for the test; it stops when the test ends.
func NewTwilio(tb testing.TB) *Twilio {
	tb.Helper()
	return &Twilio{newServer(tb, "Twilio", ContractTwilio, http.StatusCreated, parseTwilio, answerTwilio)}
}

func parseTwilio(r *Request) {
	r.Form, _ = url.ParseQuery(string(r.Body))
	if cb, err := url.Parse(r.Form.Get("StatusCallback")); err == nil {
		r.Key = cb.Query().Get("idempotency_key")
	}
}

// TwilioError is a Twilio error answer (HTTP status with Twilio's error code), e.g.
// TwilioError(400, 21211, "Invalid 'To' Phone Number").
func TwilioError(status, code int, message string) Response {
	return Response{Status: status, Body: mustJSON(map[string]any{"code": code, "message": message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status})}
}

func answerTwilio(w http.ResponseWriter, req Request, resp Response) {
	status := resp.Status
	if status == 0 {
		status = http.StatusCreated
	}
	body := resp.Body
	switch {
	case body != "":
	case status/100 == 2:
		sum := sha256.Sum256([]byte(req.Key + "\x00" + req.Form.Get("To") + "\x00" + req.At.String()))
		body = mustJSON(map[string]any{"sid": "SM" + hex.EncodeToString(sum[:16]), "status": "queued",
			"to": req.Form.Get("To"), "from": req.Form.Get("From"), "body": req.Form.Get("Body"),
			"messaging_service_sid": nilIfEmpty(req.Form.Get("MessagingServiceSid")),
			"account_sid":           accountOf(req.Path), "api_version": "2010-04-01",
			"date_created": req.At.UTC().Format(time.RFC1123Z)})
	default:
		msg, code := http.StatusText(status), 20000+status
		if req.Violation != nil {
			msg, code = req.Violation.Error(), 21600
		}
		body = TwilioError(status, code, msg).Body
	}
	writeJSON(w, status, body)
}

func accountOf(path string) string {
	rest, _ := strings.CutPrefix(path, "/2010-04-01/Accounts/")
	sid, _, _ := strings.Cut(rest, "/")
	return sid
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// OpenAI is a fake OpenAI-compatible chat completions endpoint (POST /v1/chat/completions)
// for the real go-openai client (its base URL is URL+"/v1"): every request is checked
// against contracts/openai.yaml, recorded, and answered with a chat.completion whose
// assistant message is the fake's reply (SetReply) unless told otherwise.
type OpenAI struct {
	*server
	reply *replyBox
}

type replyBox struct {
	content, refusal string
}

// NewOpenAI starts an OpenAI fake replying content; it stops when the test ends.
func NewOpenAI(tb testing.TB, content string) *OpenAI {
	tb.Helper()
	box := &replyBox{content: content}
	o := &OpenAI{reply: box}
	o.server = newServer(tb, "OpenAI", ContractOpenAI, http.StatusOK, func(r *Request) { _ = json.Unmarshal(r.Body, &r.JSON) },
		func(w http.ResponseWriter, req Request, resp Response) {
			o.mu.Lock()
			content, refusal := box.content, box.refusal
			o.mu.Unlock()
			answerOpenAI(w, req, resp, content, refusal)
		})
	return o
}

// BaseURL is the base URL for an OpenAI client (URL + "/v1").
func (o *OpenAI) BaseURL() string { return o.URL + "/v1" }

// SetReply makes the success answer's assistant message content (and no refusal).
func (o *OpenAI) SetReply(content string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reply.content, o.reply.refusal = content, ""
}

// SetRefusal makes the success answer a refusal (message.refusal set, content null).
func (o *OpenAI) SetRefusal(refusal string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reply.refusal = refusal
}

// Reply is a chat completion answer whose assistant message is content.
func Reply(content string) Response {
	return Response{Status: http.StatusOK, Body: chatCompletion(content, "")}
}

// Refusal is a chat completion answer whose assistant message is a refusal.
func Refusal(refusal string) Response {
	return Response{Status: http.StatusOK, Body: chatCompletion("", refusal)}
}

func chatCompletion(content, refusal string) string {
	msg := map[string]any{"role": "assistant", "content": content}
	if refusal != "" {
		msg = map[string]any{"role": "assistant", "content": nil, "refusal": refusal}
	}
	return mustJSON(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": "gpt-fake",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
	})
}

func answerOpenAI(w http.ResponseWriter, req Request, resp Response, content, refusal string) {
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := resp.Body
	switch {
	case body != "":
	case status/100 == 2:
		body = chatCompletion(content, refusal)
	default:
		msg, typ := http.StatusText(status), "server_error"
		if status/100 == 4 {
			typ = "invalid_request_error"
		}
		if req.Violation != nil {
			msg = req.Violation.Error()
		}
		body = mustJSON(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	}
	writeJSON(w, status, body)
}

// UserMessage returns the content of a chat completion request's user message.
func (r Request) UserMessage() string {
	msgs, _ := r.JSON["messages"].([]any)
	for _, m := range msgs {
		if mm, ok := m.(map[string]any); ok && mm["role"] == "user" {
			s, _ := mm["content"].(string)
			return s
		}
	}
	return ""
}

// CheckSendGrid is for a test whose SendGrid endpoint must do more than the SendGrid fake
// (hold a request mid-send): it checks r against the SendGrid contract — a violation fails
// tb and ok is false — and returns the message's idempotency key.
func CheckSendGrid(tb testing.TB, r *http.Request) (key string, ok bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		tb.Errorf("SendGrid endpoint: read the request: %v", err)
		return "", false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := MustContract(ContractSendGrid).Validate(r); err != nil {
		tb.Errorf("SendGrid endpoint: the request breaks the provider's contract: %v", err)
		return "", false
	}
	req := Request{Body: body}
	parseSendGrid(&req)
	return req.Key, true
}
