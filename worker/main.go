// Command worker runs Recoup's dunning workflows and activities. It reads its configuration
// from the environment (see README.md), applies the database migrations, and polls the
// recoup-dunning task queue until SIGINT or SIGTERM, then shuts down gracefully.
//
//	worker            run the worker
//	worker migrate    apply the database migrations and exit
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/recoup-dunning/recoup/internal/observability"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/closedruns"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/model/retry"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/stripe"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/internal/webhook"
	"github.com/recoup-dunning/recoup/prompts"
	"github.com/recoup-dunning/recoup/workflows"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := config.FromEnv(getenv)
	if err == nil {
		err = cfg.Require(config.RoleWorker)
	}
	if err != nil {
		return err
	}
	logger := cfg.Logger()
	if cfg.Delivery == config.DeliveryLog {
		logger.Info("RECOUP_DELIVERY=log: no provider is called; every message is rendered, stored in PostgreSQL and logged")
	}
	st, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	logger.Info("database migrations applied", "new", applied)
	if len(args) > 0 {
		if args[0] == "migrate" && len(args) == 1 {
			return nil
		}
		return fmt.Errorf("unknown arguments %q (usage: worker [migrate])", args)
	}

	acts, err := NewActivities(ctx, cfg, st, logger)
	if err != nil {
		return err
	}
	reg := observability.NewRegistry()
	business := observability.NewBusiness(reg)
	acts.Dunning.Metrics, acts.Detector.Metrics = business, business
	sdkMetrics, err := observability.SDKMetricsHandler(reg)
	if err != nil {
		return err
	}
	tracing, shutdownTracing, err := observability.SetupTracing(ctx, "recoup-worker")
	if err != nil {
		return fmt.Errorf("OTEL_* configuration: %w", err)
	}
	defer func() { _ = shutdownTracing(context.Background()) }()
	c, err := cfg.DialTemporal(logger, func(o *client.Options) {
		o.MetricsHandler = sdkMetrics
		if tracing != nil {
			o.Interceptors = append(o.Interceptors, tracing)
		}
	})
	if err != nil {
		return err
	}
	defer c.Close()
	acts.Detector.Signaler = c // releases runs held by a failure-spike incident
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR %q: %w", cfg.MetricsAddr, err)
	}
	handler := MetricsHandler(reg)
	if getenv("RECOUP_PPROF") == "1" {
		handler = WithPprof(handler)
		logger.Warn("RECOUP_PPROF=1: Go's profiler is served on METRICS_ADDR under /debug/pprof/ (for benchmarks; do not expose it)")
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	fitMemory(&cfg, logger)
	workers := workflows.NewWorkers(c, acts, workflows.Tuning(cfg.Tuning))
	for _, w := range workers {
		if err := w.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
	}
	// Runs closed outside the workflow (Terminate, reset, a run timeout): their true outcome.
	go (&closedruns.Reconciler{Temporal: c, Store: st, Logger: logger}).Run(ctx, closedruns.Every)
	logger.Info("worker polling", "task_queues", []string{recoup.TaskQueue, recoup.DetectorTaskQueue, recoup.EmailTaskQueue, recoup.SMSTaskQueue}, "version", version)
	<-ctx.Done()
	logger.Info("shutting down: finishing in-flight tasks")
	// All at once: no queue keeps taking tasks while another drains, and the process is done
	// within one WorkerStopTimeout. The activities still running keep heartbeating meanwhile
	// (activities.KeepAlive): the server re-dispatches none of them unless the process dies.
	var stopping sync.WaitGroup
	for _, w := range workers {
		stopping.Go(w.Stop)
	}
	stopping.Wait()
	return nil
}

// MetricsHandler serves /metrics (Recoup's business metrics and the SDK's) and /healthz.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// WithPprof adds Go's profiler (/debug/pprof/) to h. The worker serves it only when
// RECOUP_PPROF=1: the benchmarks take CPU profiles of worker processes with it.
func WithPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// NewActivities builds the activities of both workflows, with their dependencies, from the
// configuration, saying once in the log which parts run in a fallback mode.
func NewActivities(ctx context.Context, cfg config.Config, st *postgres.Store, logger *slog.Logger) (*activities.Activities, error) {
	prompts, err := loadPrompts(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	base := activities.Base{Store: st, Prompts: prompts, Logger: logger}
	dunning, errs, err := newDunningActivities(cfg, base, logger)
	if err != nil {
		return nil, err
	}
	detector := &activities.DetectorActivities{Base: base, Email: dunning.Email, AlertEmail: cfg.AlertEmail}
	alerts, err := webhook.New(cfg.AlertWebhook)
	if err != nil {
		err = fmt.Errorf("ALERT_WEBHOOK_URL: %w", err)
	}
	errs = append(errs, err)
	detector.Alerts = alerts
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &activities.Activities{Dunning: dunning, Detector: detector}, nil
}

// loadPrompts loads the prompt set, and watches PROMPTS_DIR for marketing's edits.
func loadPrompts(ctx context.Context, cfg config.Config, logger *slog.Logger) (func() *templates.Set, error) {
	set, err := templates.Load(cfg.PromptsDir)
	if err != nil {
		return nil, fmt.Errorf("prompts (PROMPTS_DIR=%q): %w", cfg.PromptsDir, err)
	}
	logger.Info("prompt set loaded", "version", set.Version, "policy_version", set.PolicyVersion, "dir", cfg.PromptsDir)
	if cfg.PromptsDir == "" {
		return func() *templates.Set { return set }, nil
	}
	// Marketing's edits go live without a restart once they pass lint.
	w, err := templates.NewWatcher(cfg.PromptsDir, 2*time.Second, logger)
	if err != nil {
		return nil, fmt.Errorf("prompts (PROMPTS_DIR=%q): %w", cfg.PromptsDir, err)
	}
	go w.Run(ctx)
	return w.Current, nil
}

// newDunningActivities builds DunningWorkflow's activities. errs are the providers'
// configuration errors (reported together); err is fatal at once.
func newDunningActivities(cfg config.Config, base activities.Base, logger *slog.Logger) (acts *activities.DunningActivities, errs []error, err error) {
	acts = &activities.DunningActivities{Base: base,
		Schedule: cfg.Schedule, FinalWait: cfg.FinalWait, IgnoreQuietHours: cfg.IgnoreQuietHours, ContactCap: cfg.ContactCap,
		PaymentURL: cfg.PaymentURL, UnsubscribeURL: cfg.UnsubscribeURL, ReconcileWindow: cfg.ReconcileWindow,
		HearsEvents: map[recoup.Channel]bool{recoup.ChannelEmail: cfg.HearsEvents("email"), recoup.ChannelSMS: cfg.HearsEvents("sms")},
	}
	if acts.RetryPolicy, err = loadRetryPolicy(cfg.PromptsDir, logger); err != nil {
		return nil, nil, err
	}
	if cfg.StripeExecutor {
		ex, err := stripe.NewExecutor(stripe.ExecutorConfig{APIKey: cfg.StripeAPIKey, BaseURL: cfg.StripeAPIBase})
		if err != nil {
			return nil, nil, err
		}
		acts.Payer = ex
		logger.Info("Stripe executor enabled: invoices are paid through Stripe at the advised retry time")
	}
	for ch, live := range map[recoup.Channel]bool{recoup.ChannelEmail: cfg.EmailEnabled(), recoup.ChannelSMS: cfg.SMSEnabled()} {
		if live && !acts.HearsEvents[ch] {
			logger.Warn("this deployment cannot receive the provider's delivery events for the channel (SENDGRID_WEBHOOK_PUBLIC_KEY; Twilio callbacks to RECOUP_PUBLIC_BASE_URL): a send whose outcome is unknown stays in reconcile and is never resent",
				"channel", string(ch))
		}
	}
	if cfg.LLMEnabled() {
		client, err := openai.New(cfg.LLM)
		if err != nil {
			return nil, nil, err
		}
		acts.LLM = client
		logger.Info("LLM decisions enabled", "model", client.Model())
	} else {
		logger.Info("no model configured (OPENAI_API_KEY or OPENAI_BASE_URL): the deterministic rules policy decides every step")
	}
	if cfg.EmailEnabled() {
		s, err := sendgrid.New(cfg.SendGrid)
		errs = append(errs, err)
		if err == nil {
			acts.Email = s
		}
	} else {
		logger.Info("SENDGRID_API_KEY is not set: email delivery mode is log (messages are stored in PostgreSQL and logged, not sent)")
	}
	if cfg.SMSEnabled() {
		s, err := twilio.New(cfg.Twilio)
		errs = append(errs, err)
		if err == nil {
			acts.SMS = s
		}
	} else {
		logger.Info("TWILIO_ACCOUNT_SID is not set: SMS delivery mode is log (messages are stored in PostgreSQL and logged, not sent)")
	}
	hook, err := webhook.New(cfg.Webhook)
	errs = append(errs, err)
	acts.Webhook = hook
	return acts, errs, nil
}

// loadRetryPolicy reads retry.yaml from PROMPTS_DIR when it holds one, else the shipped file,
// and validates it (a bad file stops the worker, naming each field at fault). Failure codes
// are classified by the prompt set's decline table (prompts/declines.yaml).
func loadRetryPolicy(dir string, logger *slog.Logger) (*retry.Policy, error) {
	b, err := prompts.Default.ReadFile("retry.yaml")
	src := "shipped"
	if dir != "" {
		if own, ferr := os.ReadFile(filepath.Join(dir, "retry.yaml")); ferr == nil {
			b, err, src = own, nil, filepath.Join(dir, "retry.yaml")
		} else if !errors.Is(ferr, fs.ErrNotExist) {
			return nil, fmt.Errorf("retry policy: %w", ferr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("retry policy: %w", err)
	}
	p, err := retry.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	logger.Info("retry policy loaded", "source", src)
	return p, nil
}
