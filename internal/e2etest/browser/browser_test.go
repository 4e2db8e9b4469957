// Package browser_test drives the Temporal Web UI in a real browser (Chromium through the
// DevTools protocol) against the compose configuration: a Temporal dev server with an
// encrypting worker, the dev OpenID provider, the codec server accepting signed-in users'
// access tokens, and the Temporal UI server built from source with OIDC sign-in and
// TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true.
package browser_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/devoidc"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

const (
	operator     = "operator"
	operatorPass = "browser-test-password"
	clientID     = "temporal-ui"
	clientSecret = "browser-test-client-secret"
	codecToken   = "browser-test-static-token"
)

// tools are the programs the test runs besides the Temporal CLI: Chromium and the UI server
// with the image's configuration template. Missing, the test fails when
// RECOUP_REQUIRE_BROWSER=1 (CI), else it is skipped.
type tools struct{ chromium, uiServer, uiConfig string }

func findTools(t *testing.T) tools {
	t.Helper()
	root := fakes.RepoRoot()
	tl := tools{
		chromium: envOr("RECOUP_CHROMIUM", "/usr/bin/chromium"),
		uiServer: envOr("RECOUP_UI_SERVER", filepath.Join(root, ".bin", "temporal-ui-server")),
		uiConfig: filepath.Join(root, ".bin", "temporal-ui", "config", "docker.yaml"),
	}
	var missing []string
	for what, p := range map[string]string{"Chromium (apt-get install chromium, or RECOUP_CHROMIUM)": tl.chromium,
		"the Temporal UI server (make ui-server, or RECOUP_UI_SERVER)": tl.uiServer,
		"the UI server's config template (make ui-server)":             tl.uiConfig} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", what, err))
		}
	}
	if len(missing) > 0 {
		msg := "the browser test needs " + strings.Join(missing, "; ")
		if os.Getenv("RECOUP_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg + " (RECOUP_REQUIRE_BROWSER=1)")
		}
		t.Skip(msg)
	}
	return tl
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startOIDC starts the dev OpenID provider for a UI at uiOrigin.
func startOIDC(t *testing.T, uiOrigin string) *devoidc.Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := devoidc.New(devoidc.Config{
		PublicURL: "http://" + ln.Addr().String(), ClientID: clientID, ClientSecret: clientSecret,
		RedirectURIs: []string{uiOrigin + "/auth/sso/callback"}, User: operator, Password: operatorPass,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Server().Serve(ln) }()
	t.Cleanup(func() { _ = p.Server().Close() })
	return p
}

// startCodec starts the codec server as `starter codec-server` configures it in compose.
func startCodec(t *testing.T, issuer, uiOrigin string) *httptest.Server {
	t.Helper()
	keys, err := codec.ParseKeys(workertest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codec.NewOIDCVerifier(context.Background(), codec.OIDCConfig{
		Issuer: issuer, Audience: clientID, AllowedEmails: []string{operator + "@localhost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := codec.NewHandler(keys, codec.HandlerOptions{Token: codecToken, OIDC: v, Origins: []string{uiOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	// The Web UI passes the access token only to an https:// codec endpoint.
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// uiEnv is the temporal-ui service's environment in docker-compose.yml, with this test's
// addresses and secret in place of the compose hosts' and .env's; every other setting
// (sign-in on, access token passed to the codec, client id, scopes) is the file's.
func uiEnv(t *testing.T, temporal string, port int, issuer, codecURL string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fakes.RepoRoot(), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	compose := c.Services["temporal-ui"].Environment
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	here := map[string]string{
		"TEMPORAL_ADDRESS":            temporal,
		"TEMPORAL_CORS_ORIGINS":       origin,
		"TEMPORAL_CODEC_ENDPOINT":     codecURL,
		"TEMPORAL_AUTH_PROVIDER_URL":  issuer,
		"TEMPORAL_AUTH_ISSUER_URL":    issuer,
		"TEMPORAL_AUTH_CLIENT_SECRET": clientSecret,
		"TEMPORAL_AUTH_CALLBACK_URL":  origin + "/auth/sso/callback",
	}
	for _, must := range []string{"TEMPORAL_AUTH_ENABLED", "TEMPORAL_CODEC_PASS_ACCESS_TOKEN", "TEMPORAL_AUTH_CLIENT_ID", "TEMPORAL_AUTH_SCOPES"} {
		if compose[must] == "" {
			t.Fatalf("docker-compose.yml: the temporal-ui service does not set %s", must)
		}
	}
	env := []string{fmt.Sprintf("TEMPORAL_UI_PORT=%d", port), "TEMPORAL_NOTIFY_ON_NEW_VERSION=false"}
	for k, v := range compose {
		if h, ok := here[k]; ok {
			v = h
		} else if m := composeDefault.FindStringSubmatch(v); m != nil {
			v = m[1] // ${NAME:-default}: .env does not set it
		}
		if strings.Contains(v, "${") {
			t.Fatalf("docker-compose.yml: temporal-ui's %s=%s needs a value from .env this test does not know", k, v)
		}
		env = append(env, k+"="+v)
	}
	if v := compose["TEMPORAL_AUTH_CLIENT_ID"]; !strings.Contains(v, clientID) {
		t.Fatalf("docker-compose.yml: TEMPORAL_AUTH_CLIENT_ID=%s, this test signs in as client %s", v, clientID)
	}
	return env
}

var composeDefault = regexp.MustCompile(`^\$\{[A-Z0-9_]+:-(.*)\}$`)

// startUI runs the UI server binary with the image's config template (config/docker.yaml)
// and returns its origin once /healthz answers.
func startUI(t *testing.T, tl tools, env []string, port int) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(tl.uiConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "config", "docker.yaml"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(root, "ui-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tl.uiServer, "--root", root, "--config", "config", "--env", "docker", "start")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			keep := filepath.Join(artifacts(t), "ui-server.log")
			_ = os.WriteFile(keep, b, 0o644)
			t.Logf("UI server log: %s", keep)
		}
	})
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	fakes.EventuallyWithin(t, time.Minute, func() bool {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("the UI server exited: %v\n%s", err, b)
		default:
		}
		resp, err := http.Get(origin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the UI server answers /healthz")
	return origin
}

func TestSupportSignsInReadsAnEncryptedRunAndPausesItInTheWebUI(t *testing.T) {
	fakes.RequireServices(t)
	tl := findTools(t)
	keys, err := codec.ParseKeys(workertest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	e := workertest.Start(t, workertest.Options{DataConverter: codec.DataConverter(keys)})

	port := freePort(t)
	origin := fmt.Sprintf("http://127.0.0.1:%d", port)
	idp := startOIDC(t, origin)
	cs := startCodec(t, idp.Issuer(), origin)
	startUI(t, tl, uiEnv(t, e.HostPort(), port, idp.Issuer(), cs.URL), port)

	const invoice, customer = "inv_browser", "cus_browser"
	e.Event(workertest.Failed("evt_browser_1", invoice, customer, time.Now().UTC()))
	e.Eventually("the first message", func() bool { return e.Messages(invoice) == 1 })
	requireEncryptedHistory(t, e.HostPort(), recoup.WorkflowID(invoice), customer)

	// Without a token the codec decodes nothing.
	resp, err := cs.Client().Post(cs.URL+"/decode", "application/json", strings.NewReader(`{"payloads":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("codec without a token: %d, want 401", resp.StatusCode)
	}

	ctx := browser(t, tl.chromium)
	wfID := recoup.WorkflowID(invoice)
	list := origin + "/namespaces/default/workflows?query=" + url.QueryEscape(fmt.Sprintf("%s=%q", recoup.SearchAttrCustomerID, customer))
	step(t, ctx, "sign in through the provider's form",
		chromedp.Navigate(list),
		chromedp.Click(chromedp.CSS(`[data-testid="login-button"]`)), // the UI's "Continue to SSO"
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), operator),
		chromedp.SendKeys(chromedp.ID("password"), operatorPass),
		chromedp.Click(chromedp.ID("sign-in")),
	)
	// The UI brings the operator back to the page asked for: the list filtered by CustomerId.
	step(t, ctx, "find the run by CustomerId and open it",
		waitText(wfID),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href*=%q]`, url.PathEscape(wfID)))),
	)
	// The input, encrypted on the server, reads as plain JSON: the codec decoded it with the
	// operator's access token.
	step(t, ctx, "read a decoded payload",
		waitText(`"failure_code": "card_declined"`),
		waitText(`"customer_id": "`+customer+`"`),
	)
	step(t, ctx, "read the decision in the run's current details",
		chromedp.Click(chromedp.CSS(`[data-testid="user-metadata-tab"]`)),
		waitText("Last decision: Email"),
	)
	step(t, ctx, "pause the run with the pause Update",
		clickVisible(`button[aria-controls="workflow-actions"]`, "More Actions"),
		clickVisible(`[data-testid="update-button"]`, ""),
		// The dialog is open (and done moving in) once it has made up an Update ID.
		waitJS(`[...document.querySelectorAll('[data-testid="update-id"]')].some(e => e.value.length > 0)`),
		clickVisible(`[data-testid="update-select-button"]`, ""),
		waitJS(`[...document.querySelectorAll('[data-testid="update-select-button"]')].some(e => e.getAttribute("aria-expanded") === "true")`),
		clickVisible(`#update-select-select li[role="option"]`, recoup.UpdatePause),
		waitJS(`[...document.querySelectorAll('[data-testid="update-select"]')].some(e => e.value === "`+recoup.UpdatePause+`")`),
		typeJSON(`[data-testid="update-confirmation-modal"] [contenteditable="true"]`,
			`{"by": "operator", "reason": "customer called support"}`),
		clickVisible(`[data-testid="update-confirmation-modal"] [data-testid="confirm-modal-button"]`, ""),
		waitText("Update successful"),
	)
	e.Eventually("the run is paused", func() bool { return e.State(invoice).Status == recoup.StatusPaused })
}

// requireEncryptedHistory reads the run's stored history with a client that has no codec
// and fails unless every payload of its start event is encrypted (the encoding
// internal/codec sets) and the customer id appears nowhere in it: what the Web UI shows
// decoded is not stored in plain text.
func requireEncryptedHistory(t *testing.T, hostPort, wfID, customer string) {
	t.Helper()
	plain, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := plain.GetWorkflowHistory(ctx, wfID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	payloads := ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(payloads) == 0 {
		t.Fatalf("the run's start event has no input payloads: %v", ev)
	}
	for i, p := range payloads {
		if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != codec.MetadataEncodingEncrypted {
			t.Errorf("stored input payload %d has encoding %q, want %q", i, enc, codec.MetadataEncodingEncrypted)
		}
		if strings.Contains(string(p.GetData()), customer) {
			t.Errorf("stored input payload %d contains the customer id in plain text", i)
		}
	}
}

// typeJSON puts text into the code editor at sel as if pasted (typing would trip the
// editor's automatic closing of brackets and quotes).
func typeJSON(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		clickVisible(sel, ""),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
			return err
		}),
	)
}

// browser starts headless Chromium with a fresh profile; the context ends with the test.
func browser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
		// The codec server's certificate is httptest's own, which no browser trusts.
		chromedp.IgnoreCertErrors,
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", chromium, err)
	}
	return ctx
}

// step runs actions with a deadline; on failure it saves a screenshot and the page's HTML.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		dir := artifacts(t)
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		loc, _ := chromedp.Run(dctx, chromedp.Location())
		png, _ := chromedp.Run(dctx, chromedp.FullScreenshot(100))
		html, _ := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("html")))
		shot, page := filepath.Join(dir, "failure.png"), filepath.Join(dir, "failure.html")
		_ = os.WriteFile(shot, png, 0o644)
		_ = os.WriteFile(page, []byte(html), 0o644)
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within 60s: %w", err)
		}
		t.Fatalf("%s: %v\npage %s\nscreenshot %s\nHTML %s", what, err, loc, shot, page)
	}
}

// artifacts is where a failing test leaves its screenshot, page and UI server log: kept
// after the test (unlike t.TempDir), RECOUP_BROWSER_ARTIFACTS or a new directory in $TMPDIR.
func artifacts(t *testing.T) string {
	if d, ok := artifactDirs.Load(t.Name()); ok {
		return d.(string)
	}
	d := os.Getenv("RECOUP_BROWSER_ARTIFACTS")
	if d == "" || os.MkdirAll(d, 0o755) != nil {
		var err error
		if d, err = os.MkdirTemp("", "recoup-browser-"); err != nil {
			d = os.TempDir()
		}
	}
	artifactDirs.Store(t.Name(), d)
	return d
}

var artifactDirs sync.Map

// waitText waits until the page's visible text, or that of a frame of it (the UI renders
// markdown such as current details in same-origin frames), contains s, across navigations
// (a poll in a page that goes away is started again in the next one).
func waitText(s string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](fmt.Sprintf(`[document, ...[...document.querySelectorAll("iframe")].map(f => {
		try { return f.contentDocument } catch (e) { return null } })].some(d => d && d.body && d.body.innerText.includes(%q))`, s),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			_, err := poll(ctx, t)
			if err != nil && (ctx.Err() != nil || !navigatedAway(err)) {
				return fmt.Errorf("waiting for the text %q: %w", s, err)
			}
			if err == nil {
				return nil
			}
		}
	})
}

// clickVisible waits for an element matching the CSS selector sel, shown on the page and,
// unless text is empty, whose text is text, and clicks it (the element's click(), which runs
// the UI's own handlers). The UI keeps hidden copies of some controls for other screen sizes.
func clickVisible(sel, text string) chromedp.Action[chromedp.Void] {
	click := chromedp.Poll[bool](fmt.Sprintf(`(() => {
		const el = [...document.querySelectorAll(%q)].find(e => e.getClientRects().length > 0 &&
			getComputedStyle(e).visibility !== "hidden" && (%q === "" || e.innerText.trim() === %q));
		if (!el) return false;
		el.click();
		return true;
	})()`, sel, text, text), chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := click(ctx, t); err != nil {
			return fmt.Errorf("clicking %s %q: %w", sel, text, err)
		}
		return nil
	})
}

// waitJS waits until the expression is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := poll(ctx, t); err != nil {
			return fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return nil
	})
}

// navigatedAway is the error of a script whose page was replaced while it ran.
func navigatedAway(err error) bool {
	m := err.Error()
	return strings.Contains(m, "Cannot find context with specified id") ||
		strings.Contains(m, "Execution context was destroyed") ||
		strings.Contains(m, "Inspected target navigated or closed")
}
