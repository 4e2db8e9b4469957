package codec_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"go.temporal.io/sdk/converter"

	"github.com/recoup-dunning/recoup/internal/codec"
)

const testClientID = "temporal-ui"

// testIssuer is an OpenID provider for tests: discovery, the JWKS of its key, and a
// userinfo endpoint answering userinfoEmail for any bearer token.
type testIssuer struct {
	srv           *httptest.Server
	key           *mockoidc.Keypair
	userinfoEmail string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ti := &testIssuer{key: newKeypair(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                ti.srv.URL,
			"authorization_endpoint":                ti.srv.URL + "/authorize",
			"token_endpoint":                        ti.srv.URL + "/token",
			"jwks_uri":                              ti.srv.URL + "/jwks",
			"userinfo_endpoint":                     ti.srv.URL + "/userinfo",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		b, err := ti.key.JWKS()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": "u1", "email": ti.userinfoEmail, "email_verified": true})
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	return ti
}

func newKeypair(t *testing.T) *mockoidc.Keypair {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := mockoidc.NewKeypair(k)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// token signs claims with kp; the defaults are a valid access token of ti for testClientID.
func (ti *testIssuer) token(t *testing.T, kp *mockoidc.Keypair, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": ti.srv.URL, "aud": testClientID, "sub": "u1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	s, err := kp.SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func oidcServer(t *testing.T, cfg codec.OIDCConfig) (*httptest.Server, *codec.Codec) {
	t.Helper()
	v, err := codec.NewOIDCVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewOIDCVerifier: %v", err)
	}
	c := mustParse(t, "k1:"+testKey(1))
	h, err := codec.NewHandler(c, codec.HandlerOptions{Token: testToken, OIDC: v, Origins: []string{uiOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, c
}

// decodeStatus posts one encrypted payload to /decode with authz and returns the status and
// whether the answer holds the plain text.
func decodeStatus(t *testing.T, srv *httptest.Server, c *codec.Codec, authz string) (int, bool) {
	t.Helper()
	plain, err := converter.GetDefaultDataConverter().ToPayloads(alice)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	body, err := protoJSON(enc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/decode", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Payloads []struct {
			Data []byte `json:"data"`
		} `json:"payloads"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	decoded := len(out.Payloads) == 1 && strings.Contains(string(out.Payloads[0].Data), alice.Email)
	return resp.StatusCode, decoded
}

func TestHandlerAcceptsAValidOIDCAccessTokenAndTheStaticToken(t *testing.T) {
	ti := newTestIssuer(t)
	srv, c := oidcServer(t, codec.OIDCConfig{Issuer: ti.srv.URL, Audience: testClientID})
	for name, authz := range map[string]string{
		"access token": "Bearer " + ti.token(t, ti.key, nil),
		"static token": "Bearer " + testToken,
	} {
		if code, ok := decodeStatus(t, srv, c, authz); code != http.StatusOK || !ok {
			t.Errorf("%s: status %d, decoded %v; want 200 with the plain payload", name, code, ok)
		}
	}
}

func TestHandlerRefusesBadOIDCAccessTokens(t *testing.T) {
	ti := newTestIssuer(t)
	srv, c := oidcServer(t, codec.OIDCConfig{Issuer: ti.srv.URL, Audience: testClientID})
	other := newKeypair(t)
	past := time.Now().Add(-time.Hour)
	cases := map[string]string{
		"no token":   "",
		"not bearer": "Basic " + ti.token(t, ti.key, nil),
		"garbage":    "Bearer not.a.jwt",
		"expired": "Bearer " + ti.token(t, ti.key, func(c jwt.MapClaims) {
			c["exp"] = past.Unix()
			c["iat"] = past.Add(-time.Hour).Unix()
			c["nbf"] = past.Add(-time.Hour).Unix()
		}),
		"wrong issuer":      "Bearer " + ti.token(t, ti.key, func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com" }),
		"wrong audience":    "Bearer " + ti.token(t, ti.key, func(c jwt.MapClaims) { c["aud"] = "some-other-app" }),
		"no audience":       "Bearer " + ti.token(t, ti.key, func(c jwt.MapClaims) { delete(c, "aud") }),
		"foreign signature": "Bearer " + ti.token(t, other, nil),
		"unsigned":          "Bearer " + unsigned(t, ti),
	}
	for name, authz := range cases {
		code, decoded := decodeStatus(t, srv, c, authz)
		if code != http.StatusUnauthorized || decoded {
			t.Errorf("%s: status %d, decoded %v; want 401 and nothing decoded", name, code, decoded)
		}
	}
}

func unsigned(t *testing.T, ti *testIssuer) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"iss": ti.srv.URL, "aud": testClientID, "sub": "u1", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandlerOIDCAllowedEmails(t *testing.T) {
	ti := newTestIssuer(t)
	srv, c := oidcServer(t, codec.OIDCConfig{
		Issuer: ti.srv.URL, Audience: testClientID,
		AllowedEmails: []string{"Ops@Example.com", "@support.example.com"},
	})
	withEmail := func(email string, verified any) string {
		return "Bearer " + ti.token(t, ti.key, func(c jwt.MapClaims) {
			c["email"] = email
			if verified != nil {
				c["email_verified"] = verified
			}
		})
	}
	cases := []struct {
		name  string
		authz string
		want  int
	}{
		{"listed email, any case", withEmail("ops@example.COM", true), 200},
		{"listed domain", withEmail("kim@support.example.com", nil), 200},
		{"other user of the same domain", withEmail("eve@example.com", true), 401},
		{"look-alike domain", withEmail("eve@evilsupport.example.com", true), 401},
		{"unverified email", withEmail("ops@example.com", false), 401},
		{"static token is not subject to the list", "Bearer " + testToken, 200},
	}
	for _, tc := range cases {
		if code, decoded := decodeStatus(t, srv, c, tc.authz); code != tc.want || decoded != (tc.want == 200) {
			t.Errorf("%s: status %d, decoded %v; want %d", tc.name, code, decoded, tc.want)
		}
	}

	// An access token without an email claim: the provider's userinfo decides.
	noEmail := "Bearer " + ti.token(t, ti.key, nil)
	ti.userinfoEmail = "mallory@example.org"
	if code, _ := decodeStatus(t, srv, c, noEmail); code != http.StatusUnauthorized {
		t.Errorf("userinfo names an unlisted user: status %d, want 401", code)
	}
	other := "Bearer " + ti.token(t, ti.key, func(c jwt.MapClaims) { c["sub"] = "u2" })
	ti.userinfoEmail = "kim@support.example.com"
	if code, decoded := decodeStatus(t, srv, c, other); code != http.StatusOK || !decoded {
		t.Errorf("userinfo names a listed user: status %d, decoded %v; want 200", code, decoded)
	}
}

func TestOIDCVerifierRefusesBadConfiguration(t *testing.T) {
	ti := newTestIssuer(t)
	cases := []struct {
		name string
		cfg  codec.OIDCConfig
		want string
	}{
		{"no issuer", codec.OIDCConfig{Audience: testClientID}, "CODEC_OIDC_ISSUER is empty"},
		{"issuer not a URL", codec.OIDCConfig{Issuer: "login.example.com", Audience: testClientID}, "CODEC_OIDC_ISSUER"},
		{"no audience", codec.OIDCConfig{Issuer: ti.srv.URL}, "CODEC_OIDC_AUDIENCE is empty"},
		{"bad allowed email", codec.OIDCConfig{Issuer: ti.srv.URL, Audience: testClientID, AllowedEmails: []string{"example.com"}}, "CODEC_OIDC_ALLOWED_EMAILS"},
		{"issuer differs from discovery", codec.OIDCConfig{Issuer: ti.srv.URL + "/realm", Audience: testClientID}, "OpenID discovery failed"},
		{"nothing there", codec.OIDCConfig{Issuer: "http://127.0.0.1:1", Audience: testClientID}, "OpenID discovery failed"},
	}
	for _, tc := range cases {
		_, err := codec.NewOIDCVerifier(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := codec.NewHandler(mustParse(t, "k1:"+testKey(1)), codec.HandlerOptions{}); err == nil ||
		!strings.Contains(err.Error(), "CODEC_AUTH_TOKEN") || !strings.Contains(err.Error(), "CODEC_OIDC_ISSUER") {
		t.Errorf("NewHandler without any authentication: err = %v", err)
	}
}

// A provider reached under another name than its issuer's (docker compose: the service name)
// is accepted with CODEC_OIDC_DISCOVERY_URL, and its tokens carry the public issuer.
func TestOIDCVerifierDiscoveryURLDiffersFromIssuer(t *testing.T) {
	ti := newTestIssuer(t)
	public := ti.srv.URL
	internal := strings.Replace(public, "127.0.0.1", "localhost", 1)
	srv, c := oidcServer(t, codec.OIDCConfig{Issuer: public, DiscoveryURL: internal, Audience: testClientID})
	if code, ok := decodeStatus(t, srv, c, "Bearer "+ti.token(t, ti.key, nil)); code != 200 || !ok {
		t.Errorf("status %d, decoded %v; want 200", code, ok)
	}
}
