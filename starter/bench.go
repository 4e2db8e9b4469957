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
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// cmdBench is the ingress load generator: it posts signed, unique payment.failed events to
// a running `starter serve`, at a fixed rate or as fast as it can, and reports accepted
// events/s and latency percentiles; then it waits until the relay has delivered every
// accepted event to Temporal and reports the delivery lag (from the event log).
func cmdBench(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "http://127.0.0.1:8080", "ingress base URL")
	rate := fs.Float64("rate", 0, "events per second (0: as fast as possible)")
	count := fs.Int("count", 2000, "events to send")
	conc := fs.Int("concurrency", 16, "concurrent requests")
	prefix := fs.String("prefix", "bench", "event and invoice id prefix (use a new one per run)")
	wait := fs.Duration("wait", 5*time.Minute, "how long to wait for delivery to Temporal (0: do not wait)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *count < 1 || *conc < 1 || *rate < 0 {
		return usageError{"usage: starter bench [--url URL] [--rate N] [--count N] [--concurrency N] [--prefix P] [--wait D]"}
	}
	if len(d.cfg.WebhookSecret) == 0 {
		return usageError{"WEBHOOK_SECRETS: the bench signs its events with the first secret"}
	}
	wh, err := standardwebhooks.NewWebhook(d.cfg.WebhookSecret[0])
	if err != nil {
		return fmt.Errorf("WEBHOOK_SECRETS: %w", err)
	}
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	ids := make(chan int)
	lat := make([]time.Duration, *count)
	var statuses sync.Map
	var failures atomic.Int64
	start := time.Now()
	go func() {
		defer close(ids)
		var tick *time.Ticker
		if *rate > 0 {
			tick = time.NewTicker(time.Duration(float64(time.Second) / *rate))
			defer tick.Stop()
		}
		for i := 0; i < *count; i++ {
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
	}()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				code, took, err := postBench(ctx, httpc, wh, *url, *prefix, i)
				lat[i] = took
				if err != nil {
					failures.Add(1)
					continue
				}
				n, _ := statuses.LoadOrStore(code, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	accepted := int64(0)
	if n, ok := statuses.Load(http.StatusAccepted); ok {
		accepted = n.(*atomic.Int64).Load()
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	fmt.Fprintf(stdout, "sent %d events in %s (rate %s, concurrency %d)\n", *count, elapsed.Round(time.Millisecond), rateLabel(*rate), *conc)
	fmt.Fprintf(stdout, "accepted: %d (%.0f events/s)", accepted, float64(accepted)/elapsed.Seconds())
	statuses.Range(func(k, v any) bool {
		if k.(int) != http.StatusAccepted {
			fmt.Fprintf(stdout, ", HTTP %d: %d", k.(int), v.(*atomic.Int64).Load())
		}
		return true
	})
	fmt.Fprintf(stdout, ", transport errors: %d\n", failures.Load())
	fmt.Fprintf(stdout, "accept latency: p50 %s  p90 %s  p99 %s  max %s\n",
		pct(sorted, 50), pct(sorted, 90), pct(sorted, 99), sorted[len(sorted)-1].Round(10*time.Microsecond))
	if *wait == 0 || accepted == 0 {
		return nil
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		var recorded, delivered int
		var p50, p99, maxLag float64
		err := st.Pool().QueryRow(ctx, `
			SELECT count(*), count(delivered_at),
				COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM delivered_at - received_at)), 0),
				COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM delivered_at - received_at)), 0),
				COALESCE(max(EXTRACT(EPOCH FROM delivered_at - received_at)), 0)::float8
			FROM events WHERE event_id LIKE $1`, "evt_"+*prefix+"_%").Scan(&recorded, &delivered, &p50, &p99, &maxLag)
		if err != nil {
			return err
		}
		if delivered == recorded || time.Now().After(deadline) {
			fmt.Fprintf(stdout, "event log: %d recorded, %d delivered to Temporal, %d lost\n", recorded, delivered, accepted-int64(recorded))
			fmt.Fprintf(stdout, "delivery lag (received → run signaled): p50 %s  p99 %s  max %s\n",
				secs(p50), secs(p99), secs(maxLag))
			if delivered != recorded {
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
