package devoidc

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// refreshGrant is what an opaque refresh token stands for: mockoidc's refresh JWT.
type refreshGrant struct {
	jwt     string
	expires time.Time
}

// maxRefreshGrants bounds the refresh tokens held; past it they are forgotten (sign in again).
const maxRefreshGrants = 1024

// token is the token endpoint: mockoidc's, with tokens that cannot be mistaken for one
// another. The access token carries "typ": "at+jwt" (RFC 9068), the ID token an at_hash
// (which the codec server refuses), and the refresh token is an opaque random string this
// provider maps to mockoidc's refresh JWT, so neither an access token nor an ID token is
// taken as a refresh token.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "malformed form", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	handle := ""
	if r.Form.Get("grant_type") == "refresh_token" {
		handle = r.Form.Get("refresh_token")
		g, ok := p.refresh[handle]
		if !ok || !p.now().Before(g.expires) {
			delete(p.refresh, handle)
			oauthError(w, "invalid_grant", "unknown or expired refresh token", http.StatusBadRequest)
			return
		}
		r.Form.Set("refresh_token", g.jwt)
	}
	rec := httptest.NewRecorder()
	p.m.Token(rec, r)
	var out map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		relay(w, rec)
		return
	}
	if err := p.markTokens(out, handle); err != nil {
		oauthError(w, "server_error", "signing the tokens failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// markTokens re-signs mockoidc's access and ID tokens with their types and replaces its
// refresh JWT by an opaque handle (the same handle on a refresh grant). p.mu is held.
func (p *Provider) markTokens(out map[string]any, handle string) error {
	at, _ := out["access_token"].(string)
	at, err := p.resign(at, "at+jwt", nil)
	if err != nil {
		return err
	}
	out["access_token"] = at
	if idt, _ := out["id_token"].(string); idt != "" {
		sum := sha256.Sum256([]byte(at))
		if out["id_token"], err = p.resign(idt, "JWT", map[string]any{"at_hash": base64.RawURLEncoding.EncodeToString(sum[:16])}); err != nil {
			return err
		}
	}
	if rt, _ := out["refresh_token"].(string); rt != "" {
		if handle == "" {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			handle = base64.RawURLEncoding.EncodeToString(b)
			if len(p.refresh) >= maxRefreshGrants {
				clear(p.refresh)
			}
			p.refresh[handle] = refreshGrant{jwt: rt, expires: p.now().Add(p.m.RefreshTTL)}
		}
		out["refresh_token"] = handle
	}
	return nil
}

// resign signs raw's claims (plus extra) again with the provider's key, with header typ.
func (p *Provider) resign(raw, typ string, extra map[string]any) (string, error) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		return "", err
	}
	for k, v := range extra {
		claims[k] = v
	}
	kid, err := p.m.Keypair.KeyID()
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"], t.Header["typ"] = kid, typ
	return t.SignedString(p.m.Keypair.PrivateKey)
}

func oauthError(w http.ResponseWriter, code, desc string, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// hostAllowed says whether the login form may answer a request for host (the Host header):
// PublicURL's host name or a loopback name.
func (p *Provider) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(strings.ToLower(host), "[]")
	if host == strings.ToLower(p.host) || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// The login form allows freeGuesses wrong passwords in a row; after that each further one
// locks it for twice as long as the last (1 s, 2 s, 4 s … up to maxLockout), answering 429
// without checking the password. A right password resets it. One counter for the process:
// there is one account.
const (
	freeGuesses = 5
	maxLockout  = 15 * time.Minute
)

type throttle struct {
	mu       sync.Mutex
	failures int
	until    time.Time
}

// wait is how long the form stays locked at now (0: not locked).
func (t *throttle) wait(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Before(t.until) {
		return t.until.Sub(now)
	}
	return 0
}

func (t *throttle) failed(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures++
	if n := t.failures - freeGuesses; n > 0 {
		d := maxLockout
		if n < 20 {
			d = min(maxLockout, time.Second<<(n-1))
		}
		t.until = now.Add(d)
	}
}

func (t *throttle) succeeded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures, t.until = 0, time.Time{}
}

// userinfo is mockoidc's userinfo answer plus "email_verified": true next to the email
// (mockoidc leaves it out; the operator's email is set by configuration, and the codec
// server refuses an email userinfo does not call verified). p.mu is held.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.m.Userinfo(rec, r)
	var out map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		relay(w, rec)
		return
	}
	if _, ok := out["email"]; ok {
		out["email_verified"] = p.user.EmailVerified
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// relay copies mockoidc's recorded answer (an error, or one not to be changed) to w.
func relay(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
