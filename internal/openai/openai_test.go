package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/provider"
)

const testSchema = `{"type":"object","properties":{"action":{"type":"string","enum":["retry","offer","stop"]},"reason":{"type":"string"}},"required":["action","reason"],"additionalProperties":false}`

type decision struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
}

func testRequest() openai.Request {
	return openai.Request{
		System:      "You decide the next dunning step.",
		User:        "Invoice 42 failed twice with insufficient_funds.",
		SchemaName:  "dunning_decision",
		Schema:      json.RawMessage(testSchema),
		Temperature: 0.2,
		MaxTokens:   200,
	}
}

// newClient returns a client for an OpenAI fake that answers every request with resp.
func newClient(t *testing.T, resp fakes.Response, timeout time.Duration) (*openai.Client, *fakes.OpenAI) {
	t.Helper()
	o := fakes.NewOpenAI(t, "")
	o.Always(resp)
	c, err := openai.New(openai.Config{APIKey: "sk-test", BaseURL: o.BaseURL(), Model: "gpt-4o-mini", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c, o
}

func reply(status int, body string) fakes.Response {
	return fakes.Response{Status: status, Body: body}
}

const completion = `{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": "{\"action\":\"offer\",\"reason\":\"two soft declines\"}", "refusal": null, "annotations": []},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {"prompt_tokens": 57, "completion_tokens": 14, "total_tokens": 71,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "service_tier": "default",
  "system_fingerprint": "fp_06737a9306"
}`

func TestCompleteSendsStructuredOutputRequest(t *testing.T) {
	c, o := newClient(t, reply(http.StatusOK, completion), time.Second)

	resp, err := c.Complete(context.Background(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	last := o.Last()
	got := struct {
		method, path, auth, contentType string
		body                            []byte
	}{last.Method, last.Path, last.Header.Get("Authorization"), last.Header.Get("Content-Type"), last.Body}

	if got.method != http.MethodPost || got.path != "/v1/chat/completions" {
		t.Errorf("request line = %s %s, want POST /v1/chat/completions", got.method, got.path)
	}
	if got.auth != "Bearer sk-test" {
		t.Errorf("Authorization = %q", got.auth)
	}
	if got.contentType != "application/json" {
		t.Errorf("Content-Type = %q", got.contentType)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got.body)
	}
	var schema any
	json.Unmarshal([]byte(testSchema), &schema)
	want := map[string]any{
		"model":  "gpt-4o-mini",
		"stream": false, // go-openai always sends it
		"messages": []any{
			map[string]any{"role": "system", "content": "You decide the next dunning step."},
			map[string]any{"role": "user", "content": "Invoice 42 failed twice with insufficient_funds."},
		},
		"response_format": map[string]any{
			"type": "json_schema",
			"json_schema": map[string]any{
				"name":   "dunning_decision",
				"schema": schema,
				"strict": true,
			},
		},
		"temperature":           0.2,
		"max_completion_tokens": 200.0,
	}
	if !strings.Contains(string(got.body), `"schema":`+testSchema) {
		t.Errorf("schema not sent verbatim:\n%s", got.body)
	}
	if !reflect.DeepEqual(body, want) {
		gotJSON, _ := json.MarshalIndent(body, "", "  ")
		wantJSON, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("body:\n%s\nwant:\n%s", gotJSON, wantJSON)
	}

	wantResp := openai.Response{
		Content:          `{"action":"offer","reason":"two soft declines"}`,
		Model:            "gpt-4o-mini-2024-07-18",
		FinishReason:     "stop",
		PromptTokens:     57,
		CompletionTokens: 14,
	}
	if resp != wantResp {
		t.Errorf("response = %+v, want %+v", resp, wantResp)
	}
	var d decision
	if err := openai.DecodeStrict(resp.Content, &d); err != nil || d.Action != "offer" {
		t.Errorf("DecodeStrict = %+v, %v", d, err)
	}
	if c.Model() != "gpt-4o-mini" {
		t.Errorf("Model() = %q", c.Model())
	}
}

func TestCompleteOmitsEmptySystemMessage(t *testing.T) {
	c, o := newClient(t, reply(http.StatusOK, completion), time.Second)
	r := testRequest()
	r.System = ""
	if _, err := c.Complete(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var roles []string
	msgs, _ := o.Last().JSON["messages"].([]any)
	for _, m := range msgs {
		roles = append(roles, m.(map[string]any)["role"].(string))
	}
	if !reflect.DeepEqual(roles, []string{"user"}) {
		t.Errorf("roles = %v, want [user]", roles)
	}
}

func TestCompleteRefusal(t *testing.T) {
	c, _ := newClient(t, reply(http.StatusOK, `{
  "id": "chatcmpl-refusal", "object": "chat.completion", "created": 1741570283, "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
    "message": {"role": "assistant", "content": null, "refusal": "I'm sorry, I can't help with that."}}],
  "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
}`), time.Second)

	resp, err := c.Complete(context.Background(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "" || resp.Refusal != "I'm sorry, I can't help with that." {
		t.Errorf("content %q, refusal %q", resp.Content, resp.Refusal)
	}
	if resp.PromptTokens != 40 || resp.CompletionTokens != 9 {
		t.Errorf("usage = %d/%d", resp.PromptTokens, resp.CompletionTokens)
	}
}

func TestCompleteHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		permanent bool
		code      string
	}{
		{"server error", 500, `{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`, false, ""},
		{"rate limited", 429, `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, false, "rate_limit_exceeded"},
		{"bad key", 401, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, true, "invalid_api_key"},
		{"not an OpenAI error body", 502, `<html>Bad Gateway</html>`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newClient(t, reply(tc.status, tc.body), time.Second)
			_, err := c.Complete(context.Background(), testRequest())
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *provider.Error", err, err)
			}
			if pe.Provider != "openai" || pe.StatusCode != tc.status || pe.Permanent != tc.permanent || pe.Code != tc.code {
				t.Errorf("err = %+v", pe)
			}
			if provider.IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v", !tc.permanent)
			}
		})
	}
}

func TestCompleteTimeout(t *testing.T) {
	c, _ := newClient(t, fakes.Response{Hang: true}, 50*time.Millisecond) // until the client gives up

	_, err := c.Complete(context.Background(), testRequest())
	if err == nil {
		t.Fatal("Complete returned no error for a server that never answers")
	}
	if !errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want a wrapped provider.ErrOutcomeUnknown", err)
	}
}

func TestCompleteNoChoices(t *testing.T) {
	c, _ := newClient(t, reply(http.StatusOK, `{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`), time.Second)
	if _, err := c.Complete(context.Background(), testRequest()); err == nil {
		t.Fatal("want an error for a completion with no choices")
	}
}

func TestCompleteRejectsBadRequest(t *testing.T) {
	c, o := newClient(t, fakes.Response{}, time.Second)
	t.Cleanup(func() {
		if n := o.RequestCount(); n != 0 {
			t.Errorf("%d requests sent, want none", n)
		}
	})
	r := testRequest()
	r.Schema = json.RawMessage(`{"type":`)
	if _, err := c.Complete(context.Background(), r); err == nil {
		t.Error("want an error for an invalid schema")
	}
	r = testRequest()
	r.SchemaName = ""
	if _, err := c.Complete(context.Background(), r); err == nil {
		t.Error("want an error for a missing schema name")
	}
}

func TestNew(t *testing.T) {
	_, err := openai.New(openai.Config{})
	if err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("New without key: err = %v, want one naming OPENAI_API_KEY", err)
	}
	c, err := openai.New(openai.Config{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Model() != openai.DefaultModel {
		t.Errorf("default model = %q", c.Model())
	}
}

func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		content string
		ok      bool
	}{
		{`{"action":"stop","reason":"paid"}`, true},
		{"  {\"action\":\"stop\",\"reason\":\"paid\"}\n", true},
		{`{"action":"stop","reason":"paid","confidence":0.9}`, false}, // unknown field
		{`{"action":"stop","reason":"paid"} trailing`, false},
		{`{"action":"stop","reason":"paid"}{"action":"retry"}`, false},
		{`{"action":"stop","reason":"paid"}}`, false},
		{`string`, false}, // what the OpenAPI mock answers
		{``, false},
	} {
		var d decision
		err := openai.DecodeStrict(tc.content, &d)
		if (err == nil) != tc.ok {
			t.Errorf("DecodeStrict(%q) = %v, want ok=%v", tc.content, err, tc.ok)
		}
	}
}

func TestCompleteConnectionRefusedIsRetryable(t *testing.T) {
	o := fakes.NewOpenAI(t, "")
	url := o.BaseURL()
	o.Close() // nothing listens there any more: the request never leaves
	c, err := openai.New(openai.Config{APIKey: "k", BaseURL: url, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Complete(context.Background(), testRequest())
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Permanent || errors.Is(err, provider.ErrOutcomeUnknown) {
		t.Errorf("err = %v, want a retryable *provider.Error", err)
	}
}
