// Command loadgen is the ingress load generator (`make bench-ingress`, BENCHMARKS.md): it
// posts signed, unique payment.failed events to a running `starter serve` and reports
// accepted events/s, accept latency and the delivery lag to Temporal. It measures; it is
// not part of the product image.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoup-dunning/recoup/internal/config"
)

// options are the command line.
type options struct {
	url         string
	rate        float64
	count       int
	concurrency int
	prefix      string
	wait        time.Duration
}

func main() {
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loadgen [--url URL] [--rate N] [--count N] [--concurrency N] [--prefix P] [--wait D]\n"+
			"Signs with the first of WEBHOOK_SECRETS; reads the delivery lag from DATABASE_URL's event log.")
		fs.PrintDefaults()
	}
	var o options
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "ingress base URL")
	fs.Float64Var(&o.rate, "rate", 0, "events per second (0: as fast as possible)")
	fs.IntVar(&o.count, "count", 2000, "events to send")
	fs.IntVar(&o.concurrency, "concurrency", 16, "concurrent requests")
	fs.StringVar(&o.prefix, "prefix", "bench", "event and invoice id prefix (use a new one per run)")
	fs.DurationVar(&o.wait, "wait", 5*time.Minute, "how long to wait for delivery to Temporal (0: do not wait)")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() != 0 || o.count < 1 || o.concurrency < 1 || o.rate < 0 {
		fs.Usage()
		os.Exit(2)
	}
	cfg, err := config.FromEnv(os.Getenv)
	if err == nil && len(cfg.WebhookSecret) == 0 {
		err = errors.New("WEBHOOK_SECRETS: the load generator signs its events with the first secret")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run posts the events, reports, then waits until the relay has delivered every accepted
// event to Temporal and reports the delivery lag (from the event log).
func run(ctx context.Context, cfg config.Config, o options, stdout io.Writer) error {
	wh, err := standardwebhooks.NewWebhook(cfg.WebhookSecret[0])
	if err != nil {
		return fmt.Errorf("WEBHOOK_SECRETS: %w", err)
	}
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency}}
	res := sendAll(ctx, httpc, wh, o)
	accepted := res.report(stdout, o)
	if o.wait == 0 || accepted == 0 {
		return nil
	}
	return waitForDelivery(ctx, cfg, o, accepted, stdout)
}

// sent is what sending the events measured: each event's accept latency, the count of each
// HTTP status, the transport failures and the time it all took.
type sent struct {
	lat      []time.Duration
	statuses sync.Map // int → *atomic.Int64
	failures atomic.Int64
	elapsed  time.Duration
}

// sendAll posts o.count events with o.concurrency workers, at o.rate per second when set.
func sendAll(ctx context.Context, httpc *http.Client, wh *standardwebhooks.Webhook, o options) *sent {
	res := &sent{lat: make([]time.Duration, o.count)}
	ids := make(chan int)
	start := time.Now()
	go feedIDs(ctx, o, ids)
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				code, took, err := postBench(ctx, httpc, wh, o.url, o.prefix, i)
				res.lat[i] = took
				if err != nil {
					res.failures.Add(1)
					continue
				}
				n, _ := res.statuses.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// feedIDs sends the event numbers 0..o.count-1 on ids, paced at o.rate per second when set,
// and closes it; it stops early when ctx is done.
func feedIDs(ctx context.Context, o options, ids chan<- int) {
	defer close(ids)
	var tick *time.Ticker
	if o.rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / o.rate))
		defer tick.Stop()
	}
	for i := 0; i < o.count; i++ {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case ids <- i:
		case <-ctx.Done():
			return
		}
	}
}

// report prints the counts and accept latencies and returns the number of events accepted.
func (res *sent) report(stdout io.Writer, o options) int64 {
	accepted := int64(0)
	if n, ok := res.statuses.Load(http.StatusAccepted); ok {
		accepted = n.(*atomic.Int64).Load()
	}
	sorted := slices.Clone(res.lat)
	slices.Sort(sorted)
	fmt.Fprintf(stdout, "sent %d events in %s (rate %s, concurrency %d)\n", o.count, res.elapsed.Round(time.Millisecond), rateLabel(o.rate), o.concurrency)
	fmt.Fprintf(stdout, "accepted: %d (%.0f events/s)", accepted, float64(accepted)/res.elapsed.Seconds())
	res.statuses.Range(func(k, v any) bool {
		if k.(int) != http.StatusAccepted {
			fmt.Fprintf(stdout, ", HTTP %d: %d", k.(int), v.(*atomic.Int64).Load())
		}
		return true
	})
	fmt.Fprintf(stdout, ", transport errors: %d\n", res.failures.Load())
	fmt.Fprintf(stdout, "accept latency: p50 %s  p90 %s  p99 %s  max %s\n",
		pct(sorted, 50), pct(sorted, 90), pct(sorted, 99), sorted[len(sorted)-1].Round(10*time.Microsecond))
	return accepted
}

// waitForDelivery polls the event log until every recorded event of this run was delivered
// to Temporal or o.wait runs out, then prints the counts and delivery lags.
func waitForDelivery(ctx context.Context, cfg config.Config, o options, accepted int64, stdout io.Writer) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	deadline := time.Now().Add(o.wait)
	for {
		d, err := deliveryStats(ctx, pool, o.prefix)
		if err != nil {
			return err
		}
		if d.delivered == d.recorded || time.Now().After(deadline) {
			fmt.Fprintf(stdout, "event log: %d recorded, %d delivered to Temporal, %d lost\n", d.recorded, d.delivered, accepted-int64(d.recorded))
			fmt.Fprintf(stdout, "delivery lag (received → run signaled): p50 %s  p99 %s  max %s\n",
				secs(d.p50), secs(d.p99), secs(d.maxLag))
			if d.delivered != d.recorded {
				return errors.New("not every accepted event was delivered before --wait ran out")
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// delivery is the event log's count of this run's events, recorded and delivered, and the
// delivery lags in seconds.
type delivery struct {
	recorded, delivered int
	p50, p99, maxLag    float64
}

func deliveryStats(ctx context.Context, pool *pgxpool.Pool, prefix string) (delivery, error) {
	var d delivery
	err := pool.QueryRow(ctx, `
			SELECT count(*), count(delivered_at),
				COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM delivered_at - received_at)), 0),
				COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM delivered_at - received_at)), 0),
				COALESCE(max(EXTRACT(EPOCH FROM delivered_at - received_at)), 0)::float8
			FROM events WHERE event_id LIKE $1`, "evt_"+prefix+"_%").Scan(&d.recorded, &d.delivered, &d.p50, &d.p99, &d.maxLag)
	return d, err
}

func postBench(ctx context.Context, c *http.Client, wh *standardwebhooks.Webhook, url, prefix string, i int) (int, time.Duration, error) {
	id := prefix + "_" + strconv.Itoa(i)
	body, _ := json.Marshal(map[string]any{
		"type": "payment.failed", "event_id": "evt_" + id, "invoice_id": "inv_" + id,
		"customer_id": "cus_demo_" + fmt.Sprintf("%02d", 1+i%36), "amount_minor": 1000 + i%9000, "currency": "USD",
		"failure_code": "card_declined", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
	})
	now := time.Now()
	sig, err := wh.Sign("msg_"+id, now, body)
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg_"+id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	start := time.Now()
	resp, err := c.Do(req)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, took, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return sorted[i].Round(10 * time.Microsecond)
}

func secs(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

func rateLabel(r float64) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f/s", r)
}
