package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/ingest"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/kafka"
	"github.com/recoup-dunning/recoup/internal/metrics"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/store"
)

// ingressDeps are what serve and consume share: the event log, a lazy Temporal client (so
// events are accepted while Temporal is down), metrics and the relay.
type ingressDeps struct {
	logger *slog.Logger
	st     *store.Store
	tc     client.Client
	in     *ingest.Ingestor
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
	in := &ingest.Ingestor{Store: st, Temporal: d.tc, Logger: logger, Parallel: d.cfg.RelayParallel}
	return &ingressDeps{logger: logger, st: st, tc: d.tc, in: in}, nil
}

// serve runs the HTTP ingress on ln until ctx ends, then drains in-flight requests.
func serve(ctx context.Context, d *deps, ln net.Listener, stdout io.Writer) error {
	reg := metrics.NewRegistry()
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
	m := metrics.NewIngress(reg)
	relay := ingress.NewRelay(x.in, m, x.logger)
	srv, err := ingress.New(ingress.Options{
		Ingest: x.in, Secrets: d.cfg.WebhookSecret, StripeSecrets: d.cfg.StripeSecrets, Relay: relay,
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
	fmt.Fprintf(stdout, "ingress listening on %s (POST /v1/events, POST /v1/stripe, /healthz, /readyz, /metrics)\n", ln.Addr())
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

func cmdServe(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"serve takes no arguments (set INGRESS_ADDR, WEBHOOK_SECRETS, STRIPE_WEBHOOK_SECRETS)"}
	}
	if err := d.cfg.Require(config.RoleServe); err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", d.cfg.IngressAddr)
	if err != nil {
		return fmt.Errorf("INGRESS_ADDR %q: %w", d.cfg.IngressAddr, err)
	}
	return serve(ctx, d, ln, stdout)
}

// consume reads native events from Kafka into the log until ctx ends, and relays them.
func consume(ctx context.Context, d *deps, stdout io.Writer, opts ...kgo.Opt) error {
	x, err := newIngressDeps(ctx, d)
	if err != nil {
		return err
	}
	relay := ingress.NewRelay(x.in, nil, x.logger)
	handle, reject := ingress.KafkaHandlers(x.in, x.st, relay)
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

func cmdConsume(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"consume takes no arguments (set KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_GROUP)"}
	}
	if err := d.cfg.Require(config.RoleConsume); err != nil {
		return usageError{err.Error()}
	}
	return consume(ctx, d, stdout)
}

// cmdCodecServer serves the Temporal remote codec protocol so that the Web UI (and the CLI
// with --codec-endpoint) can show encrypted payloads to staff who hold CODEC_AUTH_TOKEN.
func cmdCodecServer(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return usageError{"codec-server takes no arguments (set RECOUP_CODEC_KEYS, CODEC_AUTH_TOKEN, CODEC_ADDR, CODEC_CORS_ORIGINS)"}
	}
	if err := d.cfg.Require(config.RoleCodecServer); err != nil {
		return usageError{err.Error()}
	}
	h, err := codec.Handler(d.cfg.Codec, d.cfg.CodecToken, d.cfg.CodecOrigins)
	if err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", d.cfg.CodecAddr)
	if err != nil {
		return fmt.Errorf("CODEC_ADDR %q: %w", d.cfg.CodecAddr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "codec server on %s (keys %v; CORS origins %v)\n", ln.Addr(), d.cfg.Codec.KeyIDs(), d.cfg.CodecOrigins)
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
