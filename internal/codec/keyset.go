package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The provider's key set (JWKS) is read again when it is older than keyMaxAge (or the
// max-age of its Cache-Control answer, whichever is shorter), and, for a token no cached key
// verifies (an unknown kid: a rotation, or a forgery), at most once per keyRefetchMin.
const (
	keyMaxAge     = 10 * time.Minute
	keyRefetchMin = 30 * time.Second
	maxJWKSBytes  = 1 << 20
)

// keySet is the provider's published signing keys, for oidc.NewVerifier. Unlike go-oidc's
// RemoteKeySet it bounds refetches (each forged token would otherwise cost one request to
// the provider) and forgets keys the provider stopped publishing (a withdrawn key stops
// verifying within keyMaxAge).
type keySet struct {
	client *http.Client
	uri    string
	algs   []jose.SignatureAlgorithm
	now    func() time.Time

	mu      sync.Mutex // held while fetching: one fetch at a time
	keys    []jose.JSONWebKey
	fetched time.Time     // when keys were read
	maxAge  time.Duration // how long they are trusted
	tried   time.Time     // the last fetch, successful or not
}

func newKeySet(client *http.Client, uri string, algs []string, now func() time.Time) *keySet {
	ks := &keySet{client: client, uri: uri, now: now}
	for _, a := range algs {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	if len(ks.algs) == 0 {
		ks.algs = []jose.SignatureAlgorithm{jose.RS256}
	}
	return ks
}

// VerifySignature returns the payload of raw when one of the provider's current keys signed
// it (oidc.KeySet).
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("the token does not carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, _, err := k.current(ctx, false)
	if err != nil {
		return nil, err
	}
	if p, ok := verifyWith(jws, keys, kid); ok {
		return p, nil
	}
	// Perhaps a key published since the last fetch; ask again, but not for every forgery.
	keys, fetched, err := k.current(ctx, true)
	if err != nil {
		return nil, err
	}
	if fetched {
		if p, ok := verifyWith(jws, keys, kid); ok {
			return p, nil
		}
	}
	return nil, errors.New("no key the provider publishes verifies the token's signature")
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for i := range keys {
		if (kid != "" && keys[i].KeyID != kid) || keys[i].Use == "enc" {
			continue
		}
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, false
}

// current returns the keys, reading them again when they are too old or, with force, when
// the last fetch is at least keyRefetchMin ago; fetched says whether it did. When a fetch
// fails the keys already held are kept (the tokens they verify still expire).
func (k *keySet) current(ctx context.Context, force bool) (keys []jose.JSONWebKey, fetched bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	stale := k.fetched.IsZero() || now.Sub(k.fetched) >= k.maxAge
	if (!stale && !force) || (!k.tried.IsZero() && now.Sub(k.tried) < keyRefetchMin && !k.fetched.IsZero()) {
		return k.keys, false, nil
	}
	if k.fetched.IsZero() && !k.tried.IsZero() && now.Sub(k.tried) < time.Second {
		return nil, false, errors.New("the provider's key set could not be read (retrying shortly)")
	}
	k.tried = now
	got, maxAge, err := k.fetch(ctx)
	if err != nil {
		if len(k.keys) == 0 {
			return nil, false, err
		}
		return k.keys, false, nil
	}
	k.keys, k.fetched, k.maxAge = got, now, maxAge
	return got, true, nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.uri, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the provider's key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("reading the provider's key set: %s answered %s", k.uri, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, 0, fmt.Errorf("reading the provider's key set: %w", err)
	}
	return set.Keys, cacheMaxAge(resp.Header.Get("Cache-Control")), nil
}

// cacheMaxAge is how long a key set answered with Cache-Control cc is used: its max-age,
// between keyRefetchMin and keyMaxAge; keyRefetchMin for no-store or no-cache.
func cacheMaxAge(cc string) time.Duration {
	d := keyMaxAge
	for _, dir := range strings.Split(cc, ",") {
		dir = strings.ToLower(strings.TrimSpace(dir))
		if dir == "no-store" || dir == "no-cache" {
			return keyRefetchMin
		}
		if v, ok := strings.CutPrefix(dir, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				d = min(d, time.Duration(n)*time.Second)
			}
		}
	}
	return max(d, keyRefetchMin)
}
