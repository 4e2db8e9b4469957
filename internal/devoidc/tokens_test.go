package devoidc_test

// Security hardening of the codec server and dev-oidc (from a review of the codecauth
// change): each test guards against the weakness its comment describes.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/devoidc"
)

// signInCode runs the login form with the right password and returns the authorization code;
// extra are added to the authorization request.
func signInCode(t *testing.T, p *devoidc.Provider, extra url.Values) string {
	t.Helper()
	f := url.Values{"client_id": {"temporal-ui"}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {"st4te"}, "username": {"operator"}, "password": {"correct horse"}}
	for k, v := range extra {
		f[k] = v
	}
	resp, err := noRedirect().PostForm(p.Issuer()+"/authorize", f)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

// tokenRequest posts form to the token endpoint with the client's credentials.
func tokenRequest(t *testing.T, p *devoidc.Provider, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("client_id", "temporal-ui")
	form.Set("client_secret", "s3cret")
	resp, err := http.PostForm(p.Issuer()+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func exchange(t *testing.T, p *devoidc.Provider) *oauth2.Token {
	t.Helper()
	oc := oauth2.Config{ClientID: "temporal-ui", ClientSecret: "s3cret", RedirectURL: callback,
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer() + "/authorize", TokenURL: p.Issuer() + "/token"}}
	tok, err := oc.Exchange(context.Background(), signInCode(t, p, nil))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Guards against: the codec server accepts any JWT of the issuer whose aud holds the client id, and
// dev-oidc signs its refresh tokens (8 h, RefreshTTL) and ID tokens exactly like access
// tokens. A refresh token (which the UI server keeps to renew the session) or the ID token
// (which the browser sends in Authorization-Extras next to every codec request) decodes
// customer data like an access token; the refresh token does so for 8 hours instead of the
// access token's one. Nothing in the codec tells token types apart (no typ "at+jwt" check, no
// rejection of tokens carrying a nonce / at_hash).
func TestCodecAcceptsOnlyAccessTokensFromDevOIDC(t *testing.T) {
	p := start(t)
	tok := exchange(t, p)
	v, err := codec.NewOIDCVerifier(context.Background(), codec.OIDCConfig{
		Issuer: p.Issuer(), Audience: "temporal-ui", AllowedEmails: []string{"operator@localhost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), tok.AccessToken); err != nil {
		t.Fatalf("access token: %v", err)
	}
	idt, _ := tok.Extra("id_token").(string)
	for name, raw := range map[string]string{"refresh token": tok.RefreshToken, "ID token": idt} {
		if err := v.Verify(context.Background(), raw); err == nil {
			t.Errorf("the codec accepts the %s as an access token (want it refused)", name)
		}
	}
}

// Guards against: the token endpoint takes an ACCESS token as a refresh token (mockoidc's refresh
// grant accepts any JWT it signed), so whoever holds an access token and the client secret
// renews it forever; combined with the finding above, the codec never sees the end of it.
func TestAccessTokenIsNotARefreshToken(t *testing.T) {
	p := start(t)
	tok := exchange(t, p)
	code, out := tokenRequest(t, p, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.AccessToken}})
	if code == http.StatusOK {
		t.Fatalf("refresh grant with the access token as refresh_token: 200 with a new access token (%v); want invalid_grant", out["access_token"] != nil)
	}
}

// Guards against (PKCE): RFC 7636 4.3 says a code_challenge without code_challenge_method is "plain".
// mockoidc stores the empty method and then skips the verifier check, so a code issued for a
// PKCE request is redeemed without any code_verifier. "plain" is offered at all
// (code_challenge_methods_supported), which RFC 9700 says a server should not.
func TestPKCEChallengeWithoutMethodIsEnforced(t *testing.T) {
	p := start(t)
	code := signInCode(t, p, url.Values{"code_challenge": {"the-verifier-the-client-kept-0123456789abcdef"}})
	status, _ := tokenRequest(t, p, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}})
	if status == http.StatusOK {
		t.Fatal("a code issued with a code_challenge (method defaulting to plain) was redeemed without a code_verifier")
	}
}

// Guards against: the login form takes unlimited guesses at full speed (no delay, lockout or 429), so
// a guessable RECOUP_DEV_OIDC_PASSWORD (any non-empty value is accepted, see the config
// review test) falls to a script on anything that reaches :8234.
func TestLoginFormThrottlesGuessing(t *testing.T) {
	p := start(t)
	f := url.Values{"client_id": {"temporal-ui"}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"x"}, "username": {"operator"}}
	const guesses = 200
	for i := range guesses {
		f.Set("password", "guess-"+strings.Repeat("x", i%7))
		resp, err := noRedirect().PostForm(p.Issuer()+"/authorize", f)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			return
		}
	}
	t.Fatalf("%d wrong passwords in a row, each answered at once with 401; want the form to slow down or refuse (429)", guesses)
}

// After the lockout the right password works again, and during it even the right password
// gets 429 (the form does not tell a locked-out guesser whether a guess was right).
func TestLoginLockoutEndsAndARightPasswordResetsIt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	p, err := devoidc.New(devoidc.Config{
		PublicURL: "http://" + ln.Addr().String(), ClientID: "temporal-ui", ClientSecret: "s3cret",
		RedirectURIs: []string{callback}, User: "operator", Password: "correct horse",
		Now: func() time.Time { return time.Unix(0, clock.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Server().Serve(ln) }()
	t.Cleanup(func() { _ = p.Server().Close() })
	try := func(pw string) int {
		f := url.Values{"client_id": {"temporal-ui"}, "redirect_uri": {callback}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"x"}, "username": {"operator"}, "password": {pw}}
		resp, err := noRedirect().PostForm(p.Issuer()+"/authorize", f)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 6 {
		try("wrong")
	}
	if got := try("correct horse"); got != http.StatusTooManyRequests {
		t.Fatalf("right password during the lockout: %d, want 429", got)
	}
	clock.Add(int64(time.Hour))
	if got := try("correct horse"); got != http.StatusFound {
		t.Fatalf("right password after the lockout: %d, want 302", got)
	}
	if got := try("wrong"); got != http.StatusUnauthorized {
		t.Fatalf("a wrong password after a successful sign-in: %d, want 401 (counter reset)", got)
	}
}

// The login form refuses a Host that is neither the public one nor loopback (DNS rebinding).
func TestLoginFormRefusesAForeignHost(t *testing.T) {
	p := start(t)
	req, _ := http.NewRequest(http.MethodGet, p.Issuer()+"/authorize?client_id=temporal-ui", nil)
	req.Host = "attacker.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host attacker.example.com: %d, want 421", resp.StatusCode)
	}
}

// The opaque refresh token renews the access token (which the codec accepts, typ at+jwt).
func TestRefreshTokenRenewsTheAccessToken(t *testing.T) {
	p := start(t)
	tok := exchange(t, p)
	if strings.Count(tok.RefreshToken, ".") == 2 {
		t.Fatalf("refresh token %q looks like a JWT; want an opaque one", tok.RefreshToken)
	}
	code, out := tokenRequest(t, p, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	at, _ := out["access_token"].(string)
	if code != http.StatusOK || at == "" {
		t.Fatalf("refresh grant: %d %v", code, out)
	}
	v, err := codec.NewOIDCVerifier(context.Background(), codec.OIDCConfig{
		Issuer: p.Issuer(), Audience: "temporal-ui", AllowedEmails: []string{"operator@localhost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), at); err != nil {
		t.Fatalf("renewed access token refused: %v", err)
	}
}
