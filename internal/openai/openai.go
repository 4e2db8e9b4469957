// Package openai is a thin wrapper over github.com/sashabaranov/go-openai for one job: asking
// a chat model for an answer that follows a JSON Schema (OpenAI "structured outputs"),
// against OpenAI or any OpenAI-compatible endpoint.
//
// The package does not interpret the answer. Callers decode Response.Content with
// DecodeStrict into their own type and fall back to a safe default when the model refused,
// the call failed, or the answer does not decode.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/recoup-dunning/recoup/internal/provider"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultBaseURL = "https://api.openai.com/v1"
	DefaultModel   = "gpt-4o-mini"
	DefaultTimeout = 20 * time.Second
)

// providerName is the provider.Error.Provider value of errors returned by Complete.
const providerName = "openai"

// Config configures a Client. Zero fields take the package defaults.
type Config struct {
	APIKey  string        // OPENAI_API_KEY; required
	BaseURL string        // OPENAI_BASE_URL, default DefaultBaseURL; any OpenAI-compatible endpoint, including the version path ("/v1")
	Model   string        // OPENAI_MODEL, default DefaultModel
	Timeout time.Duration // bound on one Complete call, default DefaultTimeout
}

// Request is one structured-output completion.
type Request struct {
	System, User string          // the system message (omitted when empty) and the user message
	SchemaName   string          // name of the response format, e.g. "dunning_decision" (a-z, A-Z, 0-9, _ and -)
	Schema       json.RawMessage // JSON Schema of the expected answer object, sent verbatim with strict mode on
	// Temperature is the sampling temperature. go-openai omits a zero value, so 0 means
	// "server default" (1 for OpenAI), not greedy decoding; use a small positive value
	// such as 0.01 for near-deterministic answers.
	Temperature float32
	MaxTokens   int // upper bound on generated tokens (sent as max_completion_tokens); 0 means server default
}

// Response is the model's answer.
type Response struct {
	Content                        string // the assistant message content (expected JSON)
	Refusal                        string // non-empty when the model refused (message.refusal)
	Model                          string // model reported by the server
	FinishReason                   string // "stop", "length", "content_filter", ...
	PromptTokens, CompletionTokens int
}

// Client sends structured-output requests. It is safe for concurrent use.
type Client struct {
	api     *openai.Client
	model   string
	timeout time.Duration
}

// New returns a Client for cfg. It fails when cfg.APIKey is empty and no cfg.BaseURL is set
// (OpenAI's own endpoint needs a key; a local OpenAI-compatible server may not).
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" && cfg.BaseURL == "" {
		return nil, errors.New("llm: OPENAI_API_KEY is empty (a key is needed unless OPENAI_BASE_URL names a server that takes none)")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	// go-openai appends "/chat/completions" to the base URL as is.
	oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Client{api: openai.NewClientWithConfig(oc), model: cfg.Model, timeout: cfg.Timeout}, nil
}

// Model returns the model the client asks for.
func (c *Client) Model() string { return c.model }

// Complete sends r and returns the first choice. A model refusal is not an error: it is
// reported in Response.Refusal. Errors from the endpoint are classified like every other
// provider call: an HTTP error answer is a *provider.Error (Permanent for 4xx other than
// 408/429), anything else goes through provider.Transport.
func (c *Client) Complete(ctx context.Context, r Request) (Response, error) {
	if r.SchemaName == "" {
		return Response{}, errors.New("llm: request has no schema name")
	}
	if !json.Valid(r.Schema) {
		return Response{}, errors.New("llm: request schema is not valid JSON")
	}

	messages := make([]openai.ChatCompletionMessage, 0, 2)
	if r.System != "" {
		messages = append(messages, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleSystem, Content: r.System})
	}
	messages = append(messages, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: r.User})

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:    c.model,
		Messages: messages,
		ResponseFormat: &openai.ChatCompletionResponseFormat{
			Type: openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{
				Name:   r.SchemaName,
				Schema: r.Schema, // json.RawMessage is a json.Marshaler: the schema goes out verbatim
				Strict: true,
			},
		},
		Temperature:         r.Temperature,
		MaxCompletionTokens: r.MaxTokens,
	})
	if err != nil {
		return Response{}, classify(err)
	}
	if len(resp.Choices) == 0 {
		return Response{}, fmt.Errorf("llm: %s answered with no choices", providerName)
	}
	choice := resp.Choices[0]
	return Response{
		Content:          choice.Message.Content,
		Refusal:          choice.Message.Refusal,
		Model:            resp.Model,
		FinishReason:     string(choice.FinishReason),
		PromptTokens:     resp.Usage.PromptTokens,
		CompletionTokens: resp.Usage.CompletionTokens,
	}, nil
}

// classify maps a go-openai error onto the provider error classes.
func classify(err error) error {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) && apiErr.HTTPStatusCode != 0 {
		// go-openai decodes "code" as a string, or as an int (0 for a JSON null).
		code := ""
		switch v := apiErr.Code.(type) {
		case string:
			code = v
		case int:
			if v != 0 {
				code = strconv.Itoa(v)
			}
		}
		return provider.FromStatus(providerName, apiErr.HTTPStatusCode, code, apiErr.Message)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) && reqErr.HTTPStatusCode != 0 {
		// The error body was not an OpenAI error object (a proxy page, say): keep only the status.
		return provider.FromStatus(providerName, reqErr.HTTPStatusCode, "", "")
	}
	return provider.Transport(providerName, err)
}

// DecodeStrict decodes content, a single JSON value, into v. Unlike json.Unmarshal it
// rejects object fields that v does not have and any data after the value, so a caller
// can tell an answer that follows its schema from one that merely resembles it.
func DecodeStrict(content string, v any) error {
	dec := json.NewDecoder(strings.NewReader(content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("llm: decode answer: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("llm: decode answer: trailing data after JSON value")
	}
	return nil
}
