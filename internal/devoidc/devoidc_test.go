package devoidc_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/devoidc"
)

const callback = "http://localhost:8233/auth/sso/callback"

func start(t *testing.T) *devoidc.Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := devoidc.New(devoidc.Config{
		PublicURL: "http://" + ln.Addr().String(), ClientID: "temporal-ui", ClientSecret: "s3cret",
		RedirectURIs: []string{callback}, User: "operator", Password: "correct horse",
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Server().Serve(ln) }()
	t.Cleanup(func() { _ = p.Server().Close() })
	return p
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestNewRefusesToStartWithoutAPasswordOrWithABadPublicURL(t *testing.T) {
	base := devoidc.Config{PublicURL: "http://localhost:9090", ClientID: "c", ClientSecret: "s", RedirectURIs: []string{callback}, User: "operator", Password: "pw"}
	for name, edit := range map[string]func(*devoidc.Config){
		"RECOUP_DEV_OIDC_PASSWORD":      func(c *devoidc.Config) { c.Password = "" },
		"RECOUP_DEV_OIDC_PUBLIC_URL":    func(c *devoidc.Config) { c.PublicURL = "localhost:9090/x" },
		"RECOUP_DEV_OIDC_CLIENT_SECRET": func(c *devoidc.Config) { c.ClientSecret = "" },
		"RECOUP_DEV_OIDC_REDIRECT_URIS": func(c *devoidc.Config) { c.RedirectURIs = nil },
	} {
		c := base
		edit(&c)
		if _, err := devoidc.New(c); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming it", name, err)
		}
	}
}

// The code flow as the Web UI's server runs it, through the login form; the access token
// it ends with is one the codec server accepts.
func TestSignInThroughTheFormYieldsATokenTheCodecAccepts(t *testing.T) {
	p := start(t)
	oc := oauth2.Config{
		ClientID: "temporal-ui", ClientSecret: "s3cret", RedirectURL: callback, Scopes: []string{"openid", "profile", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer() + "/authorize", TokenURL: p.Issuer() + "/token"},
	}
	authURL := oc.AuthCodeURL("st4te", oauth2.SetAuthURLParam("nonce", "n0nce"))
	c := noRedirect()

	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="password"`) {
		t.Fatalf("authorize without signing in: %d, want the login form; got %s", resp.StatusCode, page)
	}

	u, _ := url.Parse(authURL)
	post := func(user, pw string) *http.Response {
		f := u.Query()
		f.Set("username", user)
		f.Set("password", pw)
		resp, err := c.PostForm(p.Issuer()+"/authorize", f)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post("operator", "wrong"); r.StatusCode != http.StatusUnauthorized || r.Header.Get("Location") != "" {
		t.Fatalf("wrong password: %d to %q, want 401 and no redirect", r.StatusCode, r.Header.Get("Location"))
	}
	r := post("operator", "correct horse")
	loc, err := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), callback) || loc.Query().Get("state") != "st4te" {
		t.Fatalf("right password: %d to %q, want 302 to the callback with the state", r.StatusCode, loc)
	}

	tok, err := oc.Exchange(context.Background(), loc.Query().Get("code"))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if idt, _ := tok.Extra("id_token").(string); idt == "" {
		t.Fatal("no id_token")
	}
	v, err := codec.NewOIDCVerifier(context.Background(), codec.OIDCConfig{
		Issuer: p.Issuer(), Audience: "temporal-ui", AllowedEmails: []string{"operator@localhost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), tok.AccessToken); err != nil {
		t.Fatalf("the codec refuses the operator's access token: %v", err)
	}
}

func TestAuthorizeRefusesAnUnknownRedirectBeforeTheForm(t *testing.T) {
	p := start(t)
	q := url.Values{"client_id": {"temporal-ui"}, "redirect_uri": {"https://evil.example.com/cb"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"x"}}
	resp, err := noRedirect().Get(p.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

// Servers that reach the provider under another host name get back-channel endpoints on
// that host; the issuer and the browser's authorization endpoint stay public.
func TestDiscoveryBackChannelFollowsTheCallersHost(t *testing.T) {
	p := start(t)
	req, _ := http.NewRequest(http.MethodGet, p.Issuer()+"/.well-known/openid-configuration", nil)
	req.Host = "dev-oidc:9090"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
		Auth   string `json:"authorization_endpoint"`
		Token  string `json:"token_endpoint"`
		JWKS   string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != p.Issuer() || doc.Auth != p.Issuer()+"/authorize" ||
		doc.Token != "http://dev-oidc:9090/oidc/token" || doc.JWKS != "http://dev-oidc:9090/oidc/.well-known/jwks.json" {
		t.Fatalf("discovery = %+v", doc)
	}
}
