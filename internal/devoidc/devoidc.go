// Package devoidc is a small OpenID provider for the demo and docker compose: one operator
// account behind a login form, in front of github.com/oauth2-proxy/mockoidc, which does the
// protocol (discovery, JWKS, authorization code flow with PKCE, signed access and ID tokens,
// userinfo). It exists so that the Temporal Web UI can sign an operator in and pass the
// access token to the codec server; production uses the organisation's identity provider.
//
// The signing key is generated at start: tokens die with a restart (sign in again).
package devoidc

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// Config is the provider's one client (the Web UI) and one operator account.
type Config struct {
	// PublicURL is where browsers reach the provider, scheme://host:port without a path
	// (RECOUP_DEV_OIDC_PUBLIC_URL). The issuer is PublicURL + "/oidc".
	PublicURL string
	// ClientID and ClientSecret are the Web UI's (TEMPORAL_AUTH_CLIENT_ID/_SECRET).
	ClientID, ClientSecret string
	// RedirectURIs are the callback URLs the client may be sent back to
	// (TEMPORAL_AUTH_CALLBACK_URL); any other is refused before the login form.
	RedirectURIs []string
	// User, Password and Email are the operator's account; Email is in the tokens.
	User, Password, Email string
	// TokenTTL is the access and ID tokens' lifetime (0: one hour).
	TokenTTL time.Duration
	// Now is the login throttle's clock; nil: time.Now.
	Now func() time.Time
}

// Provider serves the OpenID endpoints under /oidc and /healthz.
type Provider struct {
	m        *mockoidc.MockOIDC
	cfg      Config
	user     *mockoidc.MockUser
	userHash [sha256.Size]byte
	passHash [sha256.Size]byte
	mu       sync.Mutex // mockoidc's session store is a plain map; also guards refresh
	srv      *http.Server
	host     string // PublicURL's host name: the login form answers only under it or loopback
	now      func() time.Time
	refresh  map[string]refreshGrant // opaque refresh token -> mockoidc's
	throttle throttle
}

// Check says what in cfg keeps the provider from starting, naming the variable.
func (cfg Config) Check() error {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Scheme != "http" || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return fmt.Errorf("RECOUP_DEV_OIDC_PUBLIC_URL %q: want http://host:port, the address browsers reach this provider at (no path; the dev provider serves plain HTTP)", cfg.PublicURL)
	}
	switch {
	case cfg.Password == "":
		return errors.New("RECOUP_DEV_OIDC_PASSWORD is empty: the dev OpenID provider refuses to start without the operator's password (make secrets generates one)")
	case cfg.User == "":
		return errors.New("RECOUP_DEV_OIDC_USER is empty")
	case cfg.ClientID == "":
		return errors.New("RECOUP_DEV_OIDC_CLIENT_ID is empty")
	case cfg.ClientSecret == "":
		return errors.New("RECOUP_DEV_OIDC_CLIENT_SECRET is empty: set it to the Web UI's TEMPORAL_AUTH_CLIENT_SECRET (make secrets generates one)")
	case len(cfg.RedirectURIs) == 0:
		return errors.New("RECOUP_DEV_OIDC_REDIRECT_URIS is empty: set it to the Web UI's TEMPORAL_AUTH_CALLBACK_URL")
	}
	return nil
}

// New checks cfg and builds the provider with a fresh signing key.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.PublicURL)
	if cfg.Email == "" {
		cfg.Email = cfg.User + "@localhost"
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048) // never mockoidc's built-in (public) key
	if err != nil {
		return nil, err
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		return nil, err
	}
	m.ClientID, m.ClientSecret = cfg.ClientID, cfg.ClientSecret
	m.AccessTTL, m.RefreshTTL = cfg.TokenTTL, 8*time.Hour
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Provider{
		m: m, cfg: cfg, host: u.Hostname(), now: cfg.Now, refresh: map[string]refreshGrant{},
		user: &mockoidc.MockUser{
			Subject: cfg.User, Email: cfg.Email, EmailVerified: true, PreferredUsername: cfg.User,
		},
		userHash: sha256.Sum256([]byte(cfg.User)),
		passHash: sha256.Sum256([]byte(cfg.Password)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc(mockoidc.DiscoveryEndpoint, p.discovery)
	mux.HandleFunc(mockoidc.AuthorizationEndpoint, p.authorize)
	mux.Handle(mockoidc.TokenEndpoint, basicToForm(p.token))
	mux.Handle(mockoidc.UserinfoEndpoint, p.locked(p.userinfo))
	mux.Handle(mockoidc.JWKSEndpoint, p.locked(m.JWKS))
	// mockoidc names its issuer after its server's address: the public one, whichever
	// address the listener has.
	p.srv = &http.Server{Addr: u.Host, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.Server = p.srv
	return p, nil
}

// Server is the HTTP server to Serve on a listener (its Addr is the public address).
func (p *Provider) Server() *http.Server { return p.srv }

// Issuer is the "iss" of the tokens: PublicURL + "/oidc".
func (p *Provider) Issuer() string { return p.m.Issuer() }

func (p *Provider) locked(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		h(w, r)
	})
}

// basicToForm moves client credentials sent with HTTP Basic (RFC 6749 2.3.1, what
// golang.org/x/oauth2 tries first) into the form, where mockoidc reads them.
func basicToForm(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); ok {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if r.Form.Get("client_id") == "" {
				id, _ = url.QueryUnescape(id)
				secret, _ = url.QueryUnescape(secret)
				r.Form.Set("client_id", id)
				r.Form.Set("client_secret", secret)
			}
		}
		next(w, r)
	}
}

// discovery is the OpenID discovery document. The issuer and the authorization endpoint
// (which the browser visits) are public; the endpoints servers call (token, keys,
// userinfo) are on the host the caller reached this document at, so that a service in
// docker compose that knows the provider by its service name is sent there, not to
// localhost.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	back := "http://" + r.Host
	doc := map[string]any{
		"issuer":                                p.Issuer(),
		"authorization_endpoint":                p.m.AuthorizationEndpoint(),
		"token_endpoint":                        back + mockoidc.TokenEndpoint,
		"jwks_uri":                              back + mockoidc.JWKSEndpoint,
		"userinfo_endpoint":                     back + mockoidc.UserinfoEndpoint,
		"grant_types_supported":                 mockoidc.GrantTypesSupported,
		"response_types_supported":              mockoidc.ResponseTypesSupported,
		"subject_types_supported":               mockoidc.SubjectTypesSupported,
		"id_token_signing_alg_values_supported": mockoidc.IDTokenSigningAlgValuesSupported,
		"scopes_supported":                      mockoidc.ScopesSupported,
		"token_endpoint_auth_methods_supported": mockoidc.TokenEndpointAuthMethodsSupported,
		"claims_supported":                      mockoidc.ClaimsSupported,
		"code_challenge_methods_supported":      p.m.CodeChallengeMethodsSupported,
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(doc)
}

// authParams are the authorization request's parameters carried through the login form.
var authParams = []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "login_hint"}

// authorize is the login gate in front of mockoidc's authorization endpoint: GET shows the
// form, POST checks the operator's credentials and only then lets mockoidc issue a code
// (for the operator) and redirect back to the client.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if !p.hostAllowed(r.Host) {
		// DNS rebinding: a page on another name that resolves here must not drive the form.
		http.Error(w, "this provider answers its login form only at RECOUP_DEV_OIDC_PUBLIC_URL's host or a loopback name", http.StatusMisdirectedRequest)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed authorization request", http.StatusBadRequest)
		return
	}
	params := url.Values{}
	for _, k := range authParams {
		if v := r.Form.Get(k); v != "" {
			params.Set(k, v)
		}
	}
	if params.Get("client_id") != p.cfg.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	if !slices.Contains(p.cfg.RedirectURIs, params.Get("redirect_uri")) {
		http.Error(w, "redirect_uri is not one of RECOUP_DEV_OIDC_REDIRECT_URIS", http.StatusBadRequest)
		return
	}
	// RFC 7636 4.3: a challenge without a method is "plain" (mockoidc would skip the check).
	if params.Get("code_challenge") != "" && params.Get("code_challenge_method") == "" {
		params.Set("code_challenge_method", mockoidc.CodeChallengeMethodPlain)
	}
	if r.Method != http.MethodPost {
		p.loginForm(w, params, "", http.StatusOK)
		return
	}
	if wait := p.throttle.wait(p.now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		p.loginForm(w, params, fmt.Sprintf("Too many wrong passwords: try again in %s.", wait.Round(time.Second)), http.StatusTooManyRequests)
		return
	}
	u := sha256.Sum256([]byte(r.PostForm.Get("username")))
	pw := sha256.Sum256([]byte(r.PostForm.Get("password")))
	if subtle.ConstantTimeCompare(u[:], p.userHash[:])&subtle.ConstantTimeCompare(pw[:], p.passHash[:]) != 1 {
		p.throttle.failed(p.now())
		p.loginForm(w, params, "Wrong user or password.", http.StatusUnauthorized)
		return
	}
	p.throttle.succeeded()
	// Hand mockoidc a clean GET with the request's parameters only (no password).
	r2 := r.Clone(r.Context())
	r2.Method, r2.Body, r2.ContentLength = http.MethodGet, http.NoBody, 0
	r2.URL.RawQuery = params.Encode()
	r2.Form, r2.PostForm = nil, nil
	r2.Header.Del("Content-Type")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m.QueueUser(p.user)
	p.m.Authorize(w, r2)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Recoup operator sign-in</title>
<style>body{font-family:sans-serif;max-width:22rem;margin:4rem auto}label,input,button{display:block;width:100%;margin:.4rem 0}p.error{color:#b00}</style>
</head><body>
<h1>Recoup operator sign-in</h1>
<p>Development OpenID provider: sign in to read encrypted runs in the Temporal Web UI.</p>
{{if .Error}}<p class="error" id="error">{{.Error}}</p>{{end}}
<form method="post" action="">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">
{{end}}<label for="username">User</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="sign-in" type="submit">Sign in</button>
</form></body></html>
`))

func (p *Provider) loginForm(w http.ResponseWriter, params url.Values, msg string, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, struct {
		Params url.Values
		Error  string
	}{params, msg})
}
