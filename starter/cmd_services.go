package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/devoidc"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/inbound"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/kafka"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
)

// The ingress and the long-running services: serve, consume, relay, event, codec-server,
// dev-oidc.
func addServiceCommands(root *cobra.Command, a *app) {
	root.AddCommand(&cobra.Command{
		Use:     "serve",
		GroupID: "services",
		Short:   "HTTP ingress: POST /v1/events, POST /v1/stripe, /healthz, /readyz, /metrics",
		Long: `Run the HTTP ingress until interrupted: POST /v1/events (Standard Webhooks), POST /v1/stripe,
/healthz, /readyz and /metrics, with the relay that delivers recorded events to Temporal.

Environment: INGRESS_ADDR (default :8080), WEBHOOK_SECRETS, STRIPE_WEBHOOK_SECRETS.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.d.cfg.Require(config.RoleServe); err != nil {
				return usageError{err.Error()}
			}
			ln, err := net.Listen("tcp", a.d.cfg.IngressAddr)
			if err != nil {
				return fmt.Errorf("INGRESS_ADDR %q: %w", a.d.cfg.IngressAddr, err)
			}
			return serve(cmd.Context(), a.d, ln, a.stdout)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:     "consume",
		GroupID: "services",
		Short:   "Consume events from Kafka",
		Long: `Consume native events from a Kafka topic until interrupted, record them and relay them to
Temporal; a message that is not a valid event is recorded as rejected.

Environment: KAFKA_BROKERS, KAFKA_TOPIC (default recoup.events), KAFKA_GROUP (default recoup-ingress).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.d.cfg.Require(config.RoleConsume); err != nil {
				return usageError{err.Error()}
			}
			return consume(cmd.Context(), a.d, a.stdout)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:     "relay",
		GroupID: "services",
		Short:   "Deliver every recorded event not yet delivered",
		Long: `Deliver every event in the event log that has not been delivered to Temporal yet (a running
serve or consume does this continuously), then exit.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return relayPending(cmd.Context(), a.d, a.stdout) },
	})
	root.AddCommand(&cobra.Command{
		Use:     "event [FILE|-]",
		GroupID: "services",
		Short:   "Validate, record and deliver one event (JSON) from a file or stdin",
		Long: `Validate, record and deliver one event (JSON, see docs/events/README.md) read from FILE, or
from stdin when FILE is - or absent. A malformed event exits with status 2 naming the field,
before anything is contacted. An event recorded while Temporal is unreachable is delivered
later by ` + "`starter relay`" + ` or a running ` + "`starter serve`" + `.`,
		Example: `  starter event payment_failed.json
  echo '{"type":"payment.recovered",…}' | starter event -`,
		Args: maxArgs(1, "one FILE or - for stdin"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return event(cmd.Context(), a.d, args, a.stdin, a.stdout)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:     "codec-server",
		GroupID: "services",
		Short:   "Payload codec server for the Temporal Web UI",
		Long: `Serve the Temporal remote codec protocol so that the Web UI (and the Temporal CLI with
--codec-endpoint) can show encrypted payloads to staff who hold CODEC_AUTH_TOKEN or, with
CODEC_OIDC_ISSUER, who signed in to the Web UI (TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true sends
their access token, verified against the issuer's keys, audience and expiry).

Environment: RECOUP_CODEC_KEYS, CODEC_AUTH_TOKEN, CODEC_ADDR (default :8081),
CODEC_CORS_ORIGINS (default http://localhost:8233), CODEC_OIDC_ISSUER,
CODEC_OIDC_DISCOVERY_URL, CODEC_OIDC_AUDIENCE (default TEMPORAL_AUTH_CLIENT_ID),
CODEC_OIDC_ALLOWED_EMAILS (required with CODEC_OIDC_ISSUER: emails or @domains, or
any-signed-in-user), CODEC_TLS_CERT and CODEC_TLS_KEY (PEM files) or
CODEC_TLS_SELF_SIGNED=true (HTTPS, which the Web UI needs to pass the access token) and
CODEC_TLS_SELF_SIGNED_DIR (keeps that certificate across restarts until near expiry).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return codecServer(cmd.Context(), a.d, a.stdout) },
	})
	root.AddCommand(&cobra.Command{
		Use:     "dev-oidc",
		GroupID: "services",
		Short:   "Development OpenID provider: one operator account for the Web UI and the codec server",
		Long: `Serve a small OpenID Connect provider for the demo and docker compose: the Temporal Web UI
signs the operator in through its login form (TEMPORAL_AUTH_*), and the codec server accepts
the operator's access token (CODEC_OIDC_ISSUER). One account, no self-service; it refuses to
start without RECOUP_DEV_OIDC_PASSWORD. Its signing key is generated at start, so tokens die
with a restart: sign in again. Production uses the organisation's identity provider.

Environment: RECOUP_DEV_OIDC_PASSWORD (required), RECOUP_DEV_OIDC_USER (default operator),
RECOUP_DEV_OIDC_EMAIL (default <user>@localhost), RECOUP_DEV_OIDC_CLIENT_ID (default
temporal-ui), RECOUP_DEV_OIDC_CLIENT_SECRET (required), RECOUP_DEV_OIDC_REDIRECT_URIS
(default http://localhost:8233/auth/sso/callback), RECOUP_DEV_OIDC_ADDR (default :8234),
RECOUP_DEV_OIDC_PUBLIC_URL (default http://localhost:8234; the issuer is <that>/oidc).`,
		Example: `  RECOUP_DEV_OIDC_PASSWORD=… RECOUP_DEV_OIDC_CLIENT_SECRET=… starter dev-oidc`,
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return devOIDC(cmd.Context(), a.d, a.stdout) },
	})
}

// devOIDC serves the development OpenID provider until ctx ends.
func devOIDC(ctx context.Context, d *deps, stdout io.Writer) error {
	if err := d.cfg.Require(config.RoleDevOIDC); err != nil {
		return usageError{err.Error()}
	}
	p, err := devoidc.New(d.cfg.DevOIDC)
	if err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", d.cfg.DevOIDCAddr)
	if err != nil {
		return fmt.Errorf("RECOUP_DEV_OIDC_ADDR %q: %w", d.cfg.DevOIDCAddr, err)
	}
	srv := p.Server()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "dev OpenID provider on %s: issuer %s, client %s, operator %q (tokens last until a restart at most)\n",
		ln.Addr(), p.Issuer(), d.cfg.DevOIDC.ClientID, d.cfg.DevOIDC.User)
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// event validates, records and delivers one event.
func event(ctx context.Context, d *deps, args []string, stdin io.Reader, stdout io.Writer) error {
	raw, err := readInput(args, stdin)
	if err != nil {
		return err
	}
	if _, err := events.Decode(raw); err != nil { // reject before connecting to anything
		return err
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	// A lazy client: the event is recorded even when Temporal is unreachable, and then
	// delivered by `starter relay` or a running `starter serve`.
	if d.tc == nil {
		if d.tc, err = d.cfg.LazyTemporal(d.cfg.Logger()); err != nil {
			return err
		}
	}
	in := &eventlog.Ingestor{Store: st, Temporal: d.tc, Logger: d.cfg.Logger()}
	res, err := in.Accept(ctx, raw, "cli")
	if err != nil {
		if res.EventID != "" && !errors.Is(err, postgres.ErrEventConflict) {
			return fmt.Errorf("%w\nthe event is recorded; `starter relay` (or a running `starter serve`) delivers it once Temporal is reachable", err)
		}
		return err
	}
	dup := ""
	if res.Duplicate {
		dup = " (duplicate event id: already recorded)"
	}
	fmt.Fprintf(stdout, "%s %s → %s: %s%s\n", res.Type, res.EventID, res.WorkflowID, res.Note, dup)
	return nil
}

func readInput(args []string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return nil, usageError{fmt.Sprintf("event: %v", err)}
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, events.MaxSize+1))
}

// relayPending delivers the recorded events not yet delivered, 100 at a time.
func relayPending(ctx context.Context, d *deps, stdout io.Writer) error {
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	tc, err := d.temporal()
	if err != nil {
		return err
	}
	in := &eventlog.Ingestor{Store: st, Temporal: tc, Logger: d.cfg.Logger()}
	total := 0
	for {
		n, err := in.DeliverPending(ctx, 100, nil)
		total += n
		if err != nil {
			return fmt.Errorf("delivered %d events, then: %w", total, err)
		}
		if n < 100 {
			break
		}
	}
	fmt.Fprintf(stdout, "delivered %d pending events\n", total)
	return nil
}

// ingressDeps are what serve and consume share: the event log, a lazy Temporal client (so
// events are accepted while Temporal is down), metrics and the relay.
type ingressDeps struct {
	logger *slog.Logger
	st     *postgres.Store
	tc     client.Client
	in     *eventlog.Ingestor
}

func newIngressDeps(ctx context.Context, d *deps, adjust ...func(*client.Options)) (*ingressDeps, error) {
	st, err := d.store(ctx)
	if err != nil {
		return nil, err
	}
	logger := d.cfg.Logger()
	if d.tc == nil {
		if d.tc, err = d.cfg.LazyTemporal(logger, adjust...); err != nil {
			return nil, err
		}
	}
	in := &eventlog.Ingestor{Store: st, Temporal: d.tc, Logger: logger, Parallel: d.cfg.RelayParallel}
	return &ingressDeps{logger: logger, st: st, tc: d.tc, in: in}, nil
}

// reportRoute names the recovery page in the listening line when it is served.
func reportRoute(d *deps) string {
	if d.cfg.ReportToken == "" {
		return ""
	}
	return ", GET " + report.PagePath
}

// serve runs the HTTP ingress on ln until ctx ends, then drains in-flight requests.
func serve(ctx context.Context, d *deps, ln net.Listener, stdout io.Writer) error {
	reg := observability.NewRegistry()
	sdkMetrics, err := observability.SDKMetricsHandler(reg)
	if err != nil {
		return err
	}
	tracing, shutdownTracing, err := observability.SetupTracing(ctx, "recoup-ingress")
	if err != nil {
		return fmt.Errorf("OTEL_* configuration: %w", err)
	}
	defer func() { _ = shutdownTracing(context.Background()) }()
	// Traces run from the HTTP request through the workflow start or signal to the activities.
	x, err := newIngressDeps(ctx, d, func(o *client.Options) {
		o.MetricsHandler = sdkMetrics
		if tracing != nil {
			o.Interceptors = append(o.Interceptors, tracing)
		}
	})
	if err != nil {
		return err
	}
	m := observability.NewIngressMetrics(reg)
	relay := eventlog.NewRelay(x.in, m, x.logger)
	sg, tw, err := providerVerifiers(d.cfg)
	if err != nil {
		return usageError{err.Error()}
	}
	replies, err := inbound.New(inbound.Options{Ingest: x.in, TwilioAccountSID: d.cfg.Twilio.AccountSID,
		SendGridSecret: d.cfg.SendGridInboundSecret, Logger: x.logger})
	if err != nil {
		return err
	}
	extra := replies.Handlers()
	if d.cfg.ReportToken != "" {
		ro, err := report.ReadOnlyPool(ctx, x.st.Pool())
		if err != nil {
			return fmt.Errorf("recovery page: read-only PostgreSQL pool: %w", err)
		}
		defer ro.Close()
		extra["GET "+report.PagePath] = report.Handler(ro, d.cfg.ReportToken, time.Now, x.logger)
	}
	srv, err := ingress.New(ingress.Options{
		Ingest: x.in, Secrets: d.cfg.WebhookSecret, StripeSecrets: d.cfg.StripeSecrets, Relay: relay,
		SendGrid: sg, Twilio: tw, PublicBaseURL: d.cfg.PublicBaseURL,
		TwilioInbound: replies.HandleTwilio, Extra: extra,
		Metrics: m, Registry: reg, Logger: x.logger,
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := x.st.Pool().Ping(ctx); err != nil {
				return fmt.Errorf("PostgreSQL: %w", err)
			}
			if _, err := x.tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
				return fmt.Errorf("Temporal: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: observability.HTTPMiddleware(srv.Handler(), "ingress"), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); relay.Run(relayCtx) }()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "ingress listening on %s (POST /v1/events, POST /v1/stripe, POST /v1/providers/{twilio,sendgrid}/inbound, /healthz, /readyz, /metrics%s)\n", ln.Addr(), reportRoute(d))
	select {
	case err = <-errc:
	case <-ctx.Done():
		x.logger.Info("shutting down: draining in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	stopRelay()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// consume reads native events from Kafka into the log until ctx ends, and relays them.
func consume(ctx context.Context, d *deps, stdout io.Writer, opts ...kgo.Opt) error {
	x, err := newIngressDeps(ctx, d)
	if err != nil {
		return err
	}
	relay := eventlog.NewRelay(x.in, nil, x.logger)
	handle, reject := eventlog.KafkaHandlers(x.in, x.st, relay)
	c, err := kafka.New(kafka.Config{Brokers: d.cfg.KafkaBrokers, Topic: d.cfg.KafkaTopic, Group: d.cfg.KafkaGroup},
		handle, reject, x.logger, opts...)
	if err != nil {
		return usageError{err.Error()}
	}
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); relay.Run(relayCtx) }()
	fmt.Fprintf(stdout, "consuming %s as group %s from %v\n", d.cfg.KafkaTopic, d.cfg.KafkaGroup, d.cfg.KafkaBrokers)
	err = c.Run(ctx)
	stopRelay()
	wg.Wait()
	return err
}

// codecServer serves the Temporal remote codec protocol so that the Web UI (and the CLI
// with --codec-endpoint) can show encrypted payloads to staff who hold CODEC_AUTH_TOKEN.
func codecServer(ctx context.Context, d *deps, stdout io.Writer) error {
	if err := d.cfg.Require(config.RoleCodecServer); err != nil {
		return usageError{err.Error()}
	}
	opts := codec.HandlerOptions{Token: d.cfg.CodecToken, Origins: d.cfg.CodecOrigins, Logger: d.cfg.Logger()}
	auth := "static token"
	if d.cfg.CodecOIDC.Issuer != "" {
		// Discovery runs in the background: the static token works while the provider is
		// down or slow, and access tokens get 503 until it succeeds.
		v, err := codec.StartOIDCVerifier(ctx, d.cfg.CodecOIDC, d.cfg.Logger())
		if err != nil {
			return usageError{err.Error()}
		}
		opts.OIDC = v
		auth = fmt.Sprintf("static token and access tokens of %s for %s", d.cfg.CodecOIDC.Issuer, d.cfg.CodecOIDC.Audience)
		if d.cfg.CodecToken == "" {
			auth = fmt.Sprintf("access tokens of %s for %s", d.cfg.CodecOIDC.Issuer, d.cfg.CodecOIDC.Audience)
		}
	}
	h, err := codec.NewHandler(d.cfg.Codec, opts)
	if err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", d.cfg.CodecAddr)
	if err != nil {
		return fmt.Errorf("CODEC_ADDR %q: %w", d.cfg.CodecAddr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	scheme, serve := "http", func() error { return hs.Serve(ln) }
	switch {
	case d.cfg.CodecTLSCert != "":
		scheme, serve = "https", func() error { return hs.ServeTLS(ln, d.cfg.CodecTLSCert, d.cfg.CodecTLSKey) }
	case d.cfg.CodecTLSSelfSigned:
		if hs.TLSConfig, err = codec.SelfSignedTLSIn(d.cfg.CodecTLSSelfSignedDir, []string{"localhost", "127.0.0.1", "::1", "codec-server"}); err != nil {
			return err
		}
		scheme, serve = "https (self-signed)", func() error { return hs.ServeTLS(ln, "", "") }
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	fmt.Fprintf(stdout, "codec server on %s, %s (keys %v; CORS origins %v; accepts %s)\n", ln.Addr(), scheme, d.cfg.Codec.KeyIDs(), d.cfg.CodecOrigins, auth)
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// providerVerifiers builds the providers' webhook verifiers from the configuration: SendGrid's
// Event Webhook with SENDGRID_WEBHOOK_PUBLIC_KEY, Twilio's callbacks with TWILIO_AUTH_TOKEN
// over RECOUP_PUBLIC_BASE_URL. Each is nil (its endpoint answers 404) when not configured.
func providerVerifiers(cfg config.Config) (ingress.SendGridVerifier, ingress.TwilioVerifier, error) {
	var sg ingress.SendGridVerifier
	var tw ingress.TwilioVerifier
	if cfg.SendGridWebhookKey != "" {
		v, err := sendgrid.NewEventVerifier(cfg.SendGridWebhookKey)
		if err != nil {
			return nil, nil, err
		}
		sg = v
	}
	if cfg.Twilio.AuthToken != "" && cfg.PublicBaseURL != "" {
		v, err := twilio.NewRequestValidator(cfg.Twilio.AuthToken)
		if err != nil {
			return nil, nil, err
		}
		tw = v
	}
	return sg, tw, nil
}
