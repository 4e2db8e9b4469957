package codec_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/recoup-dunning/recoup/internal/codec"
)

const (
	testToken = "s3cret-token"
	uiOrigin  = "https://temporal-ui.example.com"
)

func newServer(t *testing.T, c *codec.Codec) *httptest.Server {
	t.Helper()
	h, err := codec.Handler(c, testToken, []string{uiOrigin + "/", "http://localhost:8233"})
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func remote(srv *httptest.Server, path, authz string) converter.PayloadCodec {
	return converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL + path,
		Client:   *srv.Client(),
		ModifyRequest: func(r *http.Request) error {
			if authz != "" {
				r.Header.Set("Authorization", authz)
			}
			r.Header.Set("X-Namespace", "default")
			return nil
		},
	})
}

func TestHandlerRemoteCodecProtocol(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	srv := newServer(t, c)
	plain, err := converter.GetDefaultDataConverter().ToPayloads(alice, "hello", 7)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := c.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"", "/", "/default"} { // protocol: only the last path segment matters
		rc := remote(srv, path, "Bearer "+testToken)

		decoded, err := rc.Decode(encrypted)
		if err != nil {
			t.Fatalf("%q: remote Decode: %v", path, err)
		}
		for i := range plain.Payloads {
			if !proto.Equal(decoded[i], plain.Payloads[i]) {
				t.Fatalf("%q: payload %d: remote decode = %v, want %v", path, i, decoded[i], plain.Payloads[i])
			}
		}

		// /encode produces payloads the local codec can open.
		remoteEnc, err := rc.Encode(plain.Payloads)
		if err != nil {
			t.Fatalf("%q: remote Encode: %v", path, err)
		}
		if got := string(remoteEnc[0].Metadata["encryption-key-id"]); got != "k1" {
			t.Fatalf("remote Encode key id = %q", got)
		}
		back, err := c.Decode(remoteEnc)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(back[0], plain.Payloads[0]) {
			t.Fatal("local decode of remote-encoded payload mismatch")
		}
	}

	// Scheme is case-insensitive.
	if _, err := remote(srv, "", "bearer "+testToken).Decode(encrypted); err != nil {
		t.Fatalf("lower-case scheme: %v", err)
	}

	// A decode failure is a 400 whose message names the key id.
	other := mustParse(t, "k9:"+testKey(9))
	foreign, err := other.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote(srv, "", "Bearer "+testToken).Decode(foreign); err == nil ||
		!strings.Contains(err.Error(), "Bad Request") || !strings.Contains(err.Error(), "k9") {
		t.Fatalf("foreign key: err = %v", err)
	}
}

func TestHandlerRequiresToken(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	srv := newServer(t, c)
	enc, err := c.Encode([]*commonpb.Payload{{Data: []byte(`"x"`)}})
	if err != nil {
		t.Fatal(err)
	}
	for name, authz := range map[string]string{
		"missing":      "",
		"wrong":        "Bearer nope",
		"prefix":       "Bearer " + testToken[:len(testToken)-1],
		"longer":       "Bearer " + testToken + "x",
		"basic scheme": "Basic " + testToken,
		"no scheme":    testToken,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := remote(srv, "", authz).Decode(enc)
			if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
				t.Fatalf("remote Decode err = %v, want Unauthorized", err)
			}
			for _, path := range []string{"/decode", "/encode"} {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{"payloads":[]}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", uiOrigin)
				if authz != "" {
					req.Header.Set("Authorization", authz)
				}
				resp := do(t, srv, req)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%s: status %d, want 401", path, resp.StatusCode)
				}
				// The browser must be able to read the 401.
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != uiOrigin {
					t.Fatalf("401 Allow-Origin = %q", got)
				}
			}
		})
	}
}

func do(t *testing.T, srv *httptest.Server, req *http.Request) *http.Response {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func preflight(t *testing.T, srv *httptest.Server, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
	return do(t, srv, req)
}

func TestHandlerCORS(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	srv := newServer(t, c)

	t.Run("preflight allowed origin", func(t *testing.T) {
		for _, origin := range []string{uiOrigin, "http://localhost:8233"} {
			resp := preflight(t, srv, origin)
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				t.Fatalf("status %d, want 2xx", resp.StatusCode)
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      origin,
				"Access-Control-Allow-Methods":     "POST, OPTIONS",
				"Access-Control-Allow-Headers":     "Content-Type, Authorization, Authorization-Extras, X-Namespace",
				"Access-Control-Allow-Credentials": "true",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := resp.Header.Values("Vary"); len(got) == 0 || got[0] != "Origin" {
				t.Errorf("Vary = %q, want Origin", got)
			}
		}
	})

	t.Run("preflight other origin", func(t *testing.T) {
		for _, origin := range []string{"https://evil.example.com", uiOrigin + ".evil.com", "null"} {
			resp := preflight(t, srv, origin)
			for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
				if got := resp.Header.Get(k); got != "" {
					t.Errorf("%s: %s = %q, want none", origin, k, got)
				}
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", origin, resp.StatusCode)
			}
		}
	})

	t.Run("actual request", func(t *testing.T) {
		enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
		if err != nil {
			t.Fatal(err)
		}
		body, err := protoJSON(enc)
		if err != nil {
			t.Fatal(err)
		}
		for origin, wantACAO := range map[string]string{
			uiOrigin:                   uiOrigin,
			"https://evil.example.com": "",
			"":                         "",
		} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/decode", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+testToken)
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("origin %q: status %d: %s", origin, resp.StatusCode, b)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != wantACAO {
				t.Errorf("origin %q: Allow-Origin = %q, want %q", origin, got, wantACAO)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			// Remote codec JSON: base64 "eC..." is `"x"`, json/plain is anNvbi9wbGFpbg==.
			if !strings.Contains(string(b), `"payloads"`) || !strings.Contains(string(b), "anNvbi9wbGFpbg==") {
				t.Errorf("unexpected body %s", b)
			}
		}
	})
}

func TestHandlerConfigErrors(t *testing.T) {
	c := mustParse(t, "k1:"+testKey(1))
	for _, tok := range []string{"", "   "} {
		if _, err := codec.Handler(c, tok, nil); err == nil || !strings.Contains(err.Error(), "CODEC_AUTH_TOKEN") {
			t.Fatalf("empty token: err = %v, want error naming CODEC_AUTH_TOKEN", err)
		}
	}
	if _, err := codec.Handler(c, testToken, []string{"*"}); err == nil {
		t.Fatal(`"*" origin accepted`)
	}
	if _, err := codec.Handler(nil, testToken, nil); err == nil {
		t.Fatal("nil codec accepted")
	}
}

// GET /healthz answers without the token (the container's health check) and reveals
// nothing; every other GET still needs it.
func TestHandlerHealthzNeedsNoToken(t *testing.T) {
	srv := newServer(t, mustParse(t, "k1:"+testKey(1)))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
	if resp := do(t, srv, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: status %d, want 200", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/decode", nil)
	if resp := do(t, srv, req); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /decode without token: status %d, want 401", resp.StatusCode)
	}
}
