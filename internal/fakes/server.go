package fakes

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Response is how a fake answers one request.
type Response struct {
	// Status is the HTTP status; 0 is the provider's success answer (SendGrid 202, Twilio
	// 201, OpenAI 200). A 2xx status counts the message as accepted.
	Status int
	// Body is the answer's body; "" is the provider's own shape for Status (the fake's
	// success answer, or the provider's error object) unless EmptyBody is set.
	Body      string
	EmptyBody bool
	// Header is added to the answer.
	Header http.Header
	// Hang keeps the request open, answering nothing, until the client gives up: a lost
	// answer. With a success Status the provider took the message (it is counted).
	Hang bool
	// Took counts the message as accepted although Status is an error: the provider took
	// it and the answer was lost on the way back (e.g. a gateway's 502 after SendGrid's
	// 202), so that the sender cannot know whether it went out.
	Took bool
	// Before, when set, is called before the answer (or the hang) is given.
	Before func()
}

// Request is one request a fake received.
type Request struct {
	At     time.Time
	Method string
	Path   string
	Query  string // the raw query
	Header http.Header
	Body   []byte
	JSON   map[string]any // the JSON body (SendGrid, OpenAI)
	Form   url.Values     // the form body (Twilio)
	// Key is the idempotency key the request carries (SendGrid: the personalization's
	// custom_args.idempotency_key; Twilio: the status callback's idempotency_key); "" for
	// OpenAI.
	Key string
	// Violation is why the request breaks the provider's contract (nil: it keeps it).
	Violation error
	// Status is the status the fake answered (or, for a hang, would have answered).
	Status int
}

// server is what the three fakes share: an httptest server that validates every request
// against a contract, records it, and answers it as told.
type server struct {
	*httptest.Server
	tb       testing.TB
	name     string
	success  int // the provider's success status
	contract *Contract
	// parse fills the provider-specific fields of a request (JSON/Form, Key).
	parse func(*Request)
	// answer writes the provider's success answer or its error object.
	answer func(w http.ResponseWriter, req Request, resp Response)

	mu       sync.Mutex
	requests []Request
	queue    []Response
	respond  func(Request) Response
	accepted map[string]int
	perKey   map[string]int // requests per idempotency key, accepted or not
}

func newServer(tb testing.TB, name, contract string, success int, parse func(*Request), answer func(http.ResponseWriter, Request, Response)) *server {
	tb.Helper()
	c, err := LoadContract(contract)
	if err != nil {
		tb.Fatal(err)
	}
	s := &server{tb: tb, name: name, success: success, contract: c, parse: parse, answer: answer, accepted: map[string]int{}, perKey: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.tb.Errorf("%s fake: read the request: %v", s.name, err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	req := Request{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	req.Violation = s.contract.Validate(r)
	s.parse(&req)

	s.mu.Lock()
	var resp Response
	respond := s.respond
	switch {
	case req.Violation != nil:
		resp, respond = Response{Status: http.StatusBadRequest}, nil
	case len(s.queue) > 0:
		resp, s.queue, respond = s.queue[0], s.queue[1:], nil
	}
	s.mu.Unlock()
	if respond != nil { // outside the lock: it may call the fake's methods
		resp = respond(req)
	}
	s.mu.Lock()
	if req.Violation == nil && (resp.Status == 0 || resp.Status/100 == 2 || resp.Took) {
		s.accepted[req.Key]++
	}
	s.perKey[req.Key]++
	req.Status = resp.Status
	if req.Status == 0 {
		req.Status = s.success
	}
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	if req.Violation != nil {
		s.tb.Errorf("%s fake: the request breaks the provider's contract: %v", s.name, req.Violation)
	}
	if resp.Before != nil {
		resp.Before()
	}
	if resp.Hang {
		<-r.Context().Done()
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if resp.EmptyBody {
		w.WriteHeader(req.Status)
		return
	}
	s.answer(w, req, resp)
}

// Queue makes the next requests get these answers, in order (before Respond's).
func (s *server) Queue(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, rs...)
}

// Respond answers every request (after the queued answers) with f's answer; nil restores
// the provider's success answer. f runs outside the fake's lock and may be called
// concurrently.
func (s *server) Respond(f func(Request) Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// Always answers every request (after the queued answers) with r; Always(Response{})
// restores the provider's success answer.
func (s *server) Always(r Response) {
	if r.Status == 0 && r.Body == "" && !r.EmptyBody && !r.Hang && !r.Took && r.Before == nil && r.Header == nil {
		s.Respond(nil)
		return
	}
	s.Respond(func(Request) Response { return r })
}

// Requests returns every request received so far, in order.
func (s *server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestCount is len(Requests()).
func (s *server) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// RequestsFor returns how many requests carrying idempotency key key the fake received,
// accepted or not (a request that broke the contract included).
func (s *server) RequestsFor(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perKey[key]
}

// Last returns the last request received (the zero Request when there was none).
func (s *server) Last() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return Request{}
	}
	return s.requests[len(s.requests)-1]
}

// Accepted returns how many messages with idempotency key key the fake accepted (answered
// with success, took before a hang, or took before an error answer: Response.Took).
func (s *server) Accepted(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted[key]
}

// AcceptedTotal returns how many messages the fake accepted in all.
func (s *server) AcceptedTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.accepted {
		n += c
	}
	return n
}

// AcceptedKeys returns a copy of the accepted-message counts per idempotency key.
func (s *server) AcceptedKeys() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.accepted)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
