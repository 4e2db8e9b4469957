package codec_test

// Security hardening of the codec server and dev-oidc (from a review of the codecauth
// change): each test guards against the weakness its comment describes.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// countingIssuer is a provider whose userinfo answer is set by the test (any JSON) and which
// counts its JWKS fetches.
type countingIssuer struct {
	*testIssuer
	userinfo  map[string]any
	jwksFetch atomic.Int64
}

func newCountingIssuer(t *testing.T) *countingIssuer {
	t.Helper()
	ri := &countingIssuer{testIssuer: &testIssuer{key: newKeypair(t)}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": ri.srv.URL, "jwks_uri": ri.srv.URL + "/jwks", "userinfo_endpoint": ri.srv.URL + "/userinfo",
			"authorization_endpoint": ri.srv.URL + "/authorize", "token_endpoint": ri.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		ri.jwksFetch.Add(1)
		b, _ := ri.key.JWKS()
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(ri.userinfo)
	})
	ri.srv = httptest.NewServer(mux)
	t.Cleanup(ri.srv.Close)
	return ri
}

// Guards against: userinfo's email_verified is ignored. A provider whose access tokens carry no email
// (Auth0, Okta, Entra access tokens for an API) answers userinfo with the user's email and
// "email_verified": false for an address nobody proved; the allow-list by domain then admits
// anyone who registered (or renamed their account to) eve@support.example.com. The token's
// own claim is refused in this case (TestHandlerOIDCAllowedEmails), userinfo's is not.
func TestUserinfoUnverifiedEmailIsRefused(t *testing.T) {
	ri := newCountingIssuer(t)
	srv, c := oidcServer(t, codec.OIDCConfig{
		Issuer: ri.srv.URL, Audience: testClientID, AllowedEmails: []string{"@support.example.com"},
	})
	ri.userinfo = map[string]any{"sub": "u1", "email": "eve@support.example.com", "email_verified": false}
	code, decoded := decodeStatus(t, srv, c, "Bearer "+ri.token(t, ri.key, nil))
	if code != http.StatusUnauthorized || decoded {
		t.Fatalf("userinfo says the email is NOT verified: status %d, decoded %v; want 401 and nothing decoded", code, decoded)
	}
}

// Guards against: with CODEC_OIDC_DISCOVERY_URL set, the discovery document's issuer is not compared
// with CODEC_OIDC_ISSUER at all (go-oidc's InsecureIssuerURLContext skips the check), although
// the code comment and README promise the codec "refuses to start" on an issuer whose
// discovery "names another issuer". Compose sets CODEC_OIDC_DISCOVERY_URL by default
// (http://dev-oidc:8234/oidc), so an operator who points CODEC_OIDC_ISSUER at the company
// provider and leaves the default gets a codec server that starts, trusts dev-oidc's (or any
// other realm's) keys for the company issuer, and refuses every real user at run time.
// Whoever holds the other provider's key can mint tokens with the configured issuer.
func TestDiscoveryURLNamingAnotherIssuerIsRefused(t *testing.T) {
	want, other := newCountingIssuer(t), newCountingIssuer(t)
	v, err := codec.NewOIDCVerifier(context.Background(), codec.OIDCConfig{
		Issuer: want.srv.URL, DiscoveryURL: other.srv.URL, Audience: testClientID,
	})
	if err == nil {
		// What the other provider's key holder can do with it:
		forged := other.token(t, other.key, func(c jwt.MapClaims) { c["iss"] = want.srv.URL })
		t.Fatalf("CODEC_OIDC_DISCOVERY_URL answers with issuer %s, CODEC_OIDC_ISSUER is %s: the verifier started "+
			"(want an error naming the mismatch); a token signed by the OTHER provider's key with iss=%s verifies: %v",
			other.srv.URL, want.srv.URL, want.srv.URL, v.Verify(context.Background(), forged))
	}
}

// Guards against: every request with a token the cached keys do not verify makes the codec server
// fetch the provider's JWKS again (go-oidc's RemoteKeySet has no rate limit). The codec
// endpoint is reachable by every browser that may use the UI, unauthenticated: each forged
// bearer costs one outbound JWKS request, so anyone can drive the identity provider's rate
// limit (Auth0, Okta and Entra enforce them) and lock out every signed-in user.
func TestForgedTokensDoNotHammerTheProvidersJWKS(t *testing.T) {
	ri := newCountingIssuer(t)
	srv, c := oidcServer(t, codec.OIDCConfig{Issuer: ri.srv.URL, Audience: testClientID})
	if code, _ := decodeStatus(t, srv, c, "Bearer "+ri.token(t, ri.key, nil)); code != http.StatusOK {
		t.Fatalf("a valid token: %d", code)
	}
	before := ri.jwksFetch.Load()
	attacker := newKeypair(t)
	const n = 50
	for range n {
		if code, _ := decodeStatus(t, srv, c, "Bearer "+ri.token(t, attacker, nil)); code != http.StatusUnauthorized {
			t.Fatalf("forged token: %d", code)
		}
	}
	if got := ri.jwksFetch.Load() - before; got > 2 {
		t.Fatalf("%d unauthenticated requests with forged tokens made the codec server fetch the provider's JWKS %d times; want it bounded (a few per minute at most)", n, got)
	}
}

// Guards against: the codec server never re-reads the provider's key set while every token's key id
// is in its cache (go-oidc's RemoteKeySet refetches only on an unknown kid or a failed
// signature, and never expires what it holds). A provider that publishes its next key ahead
// of time (Keycloak, Auth0, Entra do) and then withdraws the old one — routine rotation, or
// the emergency revocation of a leaked key — is never noticed: tokens signed with the
// withdrawn key keep decoding customer data until the codec server restarts. The JWKS answer
// here even says "Cache-Control: no-store".
func TestWithdrawnSigningKeyStopsDecoding(t *testing.T) {
	old, next := newKeypair(t), newKeypair(t)
	ri := &testIssuer{key: old}
	var published atomic.Value // the JWKS document
	setKeys := func(kps ...interface{ JWKS() ([]byte, error) }) {
		var keys []json.RawMessage
		for _, kp := range kps {
			b, err := kp.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			var set struct{ Keys []json.RawMessage }
			if err := json.Unmarshal(b, &set); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, set.Keys...)
		}
		b, _ := json.Marshal(map[string]any{"keys": keys})
		published.Store(b)
	}
	setKeys(old, next)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": ri.srv.URL, "jwks_uri": "http://" + r.Host + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(published.Load().([]byte))
	})
	ri.srv = httptest.NewServer(mux)
	t.Cleanup(ri.srv.Close)

	// The key set's clock: the codec server reads the keys again once they are older than
	// the refresh interval (10 minutes at most).
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	srv, c := oidcServer(t, codec.OIDCConfig{Issuer: ri.srv.URL, Audience: testClientID, Now: now})
	if code, _ := decodeStatus(t, srv, c, "Bearer "+ri.token(t, old, nil)); code != http.StatusOK {
		t.Fatalf("token of the current key: %d", code)
	}
	// The provider switches to the pre-published key and withdraws the old one.
	setKeys(next)
	if code, _ := decodeStatus(t, srv, c, "Bearer "+ri.token(t, next, nil)); code != http.StatusOK {
		t.Fatalf("token of the new key: %d", code)
	}
	clock.Add(int64(11 * time.Minute))
	if code, decoded := decodeStatus(t, srv, c, "Bearer "+ri.token(t, old, nil)); code != http.StatusUnauthorized || decoded {
		t.Fatalf("token signed with the WITHDRAWN key after the provider stopped publishing it: status %d, decoded %v; want 401", code, decoded)
	}
}

// ID and refresh tokens that say what they are (an ID token's nonce or at_hash, Keycloak's
// "typ" claim) are refused; an access token marked "Bearer" is accepted.
func TestCodecRefusesTokensMarkedAsIDOrRefreshTokens(t *testing.T) {
	ri := newCountingIssuer(t)
	srv, c := oidcServer(t, codec.OIDCConfig{Issuer: ri.srv.URL, Audience: testClientID})
	for name, tc := range map[string]struct {
		claim string
		value any
		want  int
	}{
		"nonce":          {"nonce", "n0nce", http.StatusUnauthorized},
		"at_hash":        {"at_hash", "abc", http.StatusUnauthorized},
		"typ Refresh":    {"typ", "Refresh", http.StatusUnauthorized},
		"typ ID":         {"typ", "ID", http.StatusUnauthorized},
		"typ Bearer":     {"typ", "Bearer", http.StatusOK},
		"no typ (plain)": {"scope", "openid", http.StatusOK},
	} {
		tok := ri.token(t, ri.key, func(m jwt.MapClaims) { m[tc.claim] = tc.value })
		if code, _ := decodeStatus(t, srv, c, "Bearer "+tok); code != tc.want {
			t.Errorf("%s: status %d, want %d", name, code, tc.want)
		}
	}
}

// While the provider cannot be discovered the static token decodes, an access token gets 503
// (not 401: the user did nothing wrong) and /healthz says the server is degraded; once the
// provider answers, access tokens are accepted.
func TestStartOIDCVerifierRefusesAccessTokensWith503UntilDiscovered(t *testing.T) {
	ri := newCountingIssuer(t)
	var up atomic.Bool
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		ri.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := codec.StartOIDCVerifier(ctx, codec.OIDCConfig{Issuer: ri.srv.URL, DiscoveryURL: gate.URL, Audience: testClientID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "k1:"+testKey(1))
	h, err := codec.NewHandler(c, codec.HandlerOptions{Token: testToken, OIDC: v})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if code, decoded := decodeStatus(t, srv, c, "Bearer "+testToken); code != http.StatusOK || !decoded {
		t.Fatalf("static token while the provider is down: %d", code)
	}
	access := "Bearer " + ri.token(t, ri.key, nil)
	if code, _ := decodeStatus(t, srv, c, access); code != http.StatusServiceUnavailable {
		t.Fatalf("access token while the provider is down: %d, want 503", code)
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "degraded") {
		t.Fatalf("/healthz while the provider is down: %d %q, want 200 degraded", resp.StatusCode, body)
	}
	up.Store(true)
	fakes.EventuallyWithin(t, time.Minute, func() bool {
		code, _ := decodeStatus(t, srv, c, access)
		return code == http.StatusOK
	}, "access tokens accepted once the provider answers")
}
