package main

// Security hardening of the codec server and dev-oidc (from a review of the codecauth
// change): each test guards against the weakness its comment describes.

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/config"
)

// Guards against: with CODEC_OIDC_ISSUER set, `starter codec-server` runs OpenID discovery before it
// listens and exits when it fails, so an identity-provider outage (or a slow one during a
// deploy, or compose's default CODEC_OIDC_DISCOVERY_URL after dev-oidc was dropped) also takes
// down the static CODEC_AUTH_TOKEN path, the CLI's way to read encrypted runs, exactly when
// support needs it; compose then restarts it in a loop. The static token needs no provider.
func TestCodecServerServesTheStaticTokenWhileTheProviderIsDown(t *testing.T) {
	const token = "Zq8tV3xN1pL6rB0yK4wH7cJ2mF9sD5gA"
	cfg, err := config.FromEnv(func(k string) string {
		return map[string]string{
			"RECOUP_CODEC_KEYS": "k1:8tXgTnqJDTkWgOEcgyNytokDmBuGFvCyC2aL1C9SW6A=",
			"CODEC_AUTH_TOKEN":  token, "CODEC_ADDR": "127.0.0.1:0",
			"CODEC_OIDC_ISSUER": "http://127.0.0.1:1/oidc", "CODEC_OIDC_AUDIENCE": "temporal-ui",
			"CODEC_OIDC_ALLOWED_EMAILS": "any-signed-in-user",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- codecServer(ctx, &deps{cfg: cfg}, pw); _ = pw.Close() }()
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	var addr string
	select {
	case err := <-done:
		t.Fatalf("the identity provider is down: codec-server exited (%v) instead of serving CODEC_AUTH_TOKEN", err)
	case l := <-lines:
		addr = regexp.MustCompile(`on (\S+),`).FindStringSubmatch(l)[1]
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/decode", strings.NewReader(`{"payloads":[]}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("static token while the provider is down: %d, want 200", resp.StatusCode)
	}
}
