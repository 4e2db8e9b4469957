// Package kafka consumes Recoup's native events from a Kafka topic, at least once: a
// message is committed only after it is durably recorded or rejected, and the event log
// deduplicates by event id. Processing, commit strategy and rebalances:
// docs/PACKAGES.md.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults for Config.
const (
	DefaultTopic = "recoup.events"
	DefaultGroup = "recoup-ingress"
)

const (
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 10 * time.Second
	maxPollRecords = 500
	commitTimeout  = 10 * time.Second
)

// Config says where to consume from.
type Config struct {
	Brokers []string // KAFKA_BROKERS
	Topic   string   // KAFKA_TOPIC, default "recoup.events"
	Group   string   // KAFKA_GROUP, default "recoup-ingress"
}

// withDefaults returns the configuration with defaults applied and whitespace trimmed.
func (c Config) withDefaults() Config {
	out := Config{Topic: strings.TrimSpace(c.Topic), Group: strings.TrimSpace(c.Group)}
	for _, b := range c.Brokers {
		out.Brokers = append(out.Brokers, strings.TrimSpace(b))
	}
	if out.Topic == "" {
		out.Topic = DefaultTopic
	}
	if out.Group == "" {
		out.Group = DefaultGroup
	}
	return out
}

// validate checks a configuration with defaults applied; every error names its variable.
func (c Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS: at least one broker address (host:port) is required"))
	}
	for i, b := range c.Brokers {
		if err := checkBroker(b); err != nil {
			errs = append(errs, fmt.Errorf("KAFKA_BROKERS: broker %d %q: %w", i+1, b, err))
		}
	}
	if err := checkTopic(c.Topic); err != nil {
		errs = append(errs, fmt.Errorf("KAFKA_TOPIC: %q: %w", c.Topic, err))
	}
	for _, r := range c.Group {
		if r < 0x20 || r == 0x7f {
			errs = append(errs, fmt.Errorf("KAFKA_GROUP: %q contains a control character", c.Group))
			break
		}
	}
	return errors.Join(errs...)
}

func checkBroker(b string) error {
	if b == "" {
		return errors.New("empty address")
	}
	if strings.ContainsAny(b, " \t\r\n/") {
		return errors.New("not a host:port address")
	}
	host, port, err := net.SplitHostPort(b)
	if err != nil {
		var aerr *net.AddrError
		if errors.As(err, &aerr) && aerr.Err == "missing port in address" {
			return nil // kgo uses the default port 9092
		}
		return errors.New("not a host:port address")
	}
	if host == "" {
		return errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("port must be a number between 1 and 65535")
	}
	return nil
}

// checkTopic applies Kafka's rules for topic names.
func checkTopic(t string) error {
	if t == "." || t == ".." {
		return errors.New(`"." and ".." are not valid topic names`)
	}
	if len(t) > 249 {
		return errors.New("longer than 249 characters")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return errors.New("may contain only ASCII letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// Handler records one message durably. It returns nil when the event is recorded (or was a
// duplicate), a *Rejection when the message can never be recorded (invalid JSON/content, id
// conflict), or any other error for transient failures (e.g. PostgreSQL unreachable) —
// then the message is retried. A wrapped *Rejection (errors.As) counts as a rejection.
type Handler func(ctx context.Context, value []byte) error

// Rejection is the error a Handler returns for a message that can never be recorded.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string {
	if r == nil || r.Reason == "" {
		return "kafka: message rejected"
	}
	return "kafka: message rejected: " + r.Reason
}

// RejectFunc stores a refused message with its reason (PostgreSQL rejected_events), so it
// is visible. An error is treated as transient: the call is retried.
type RejectFunc func(ctx context.Context, value []byte, reason string) error

// Stats are counters since the Consumer was created.
type Stats struct {
	Recorded int64 // Handler returned nil (recorded or duplicate)
	Rejected int64 // rejected messages stored by the RejectFunc
	Retries  int64 // retries after a transient error of the Handler or the RejectFunc
}

// Consumer consumes events from Kafka; see the package documentation.
type Consumer struct {
	cfg     Config
	handle  Handler
	reject  RejectFunc
	log     *slog.Logger
	kgoOpts []kgo.Opt

	started  atomic.Bool
	recorded atomic.Int64
	rejected atomic.Int64
	retries  atomic.Int64
}

// New validates cfg (errors name KAFKA_BROKERS, KAFKA_TOPIC or KAFKA_GROUP) and returns a
// Consumer. It does not connect: the Kafka client is created by Run. opts are extra kgo
// options applied after the Consumer's own (for tests, e.g. kgo.FetchMaxWait); options that
// change the commit or rebalance behaviour break the guarantees described above.
func New(cfg Config, handle Handler, reject RejectFunc, logger *slog.Logger, opts ...kgo.Opt) (*Consumer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if handle == nil {
		return nil, errors.New("kafka: nil Handler")
	}
	if reject == nil {
		return nil, errors.New("kafka: nil RejectFunc")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Consumer{
		cfg:     cfg,
		handle:  handle,
		reject:  reject,
		log:     logger.With("component", "kafka", "topic", cfg.Topic, "group", cfg.Group),
		kgoOpts: opts,
	}, nil
}

// Stats returns the current counters. It is safe to call concurrently with Run.
func (c *Consumer) Stats() Stats {
	return Stats{Recorded: c.recorded.Load(), Rejected: c.rejected.Load(), Retries: c.retries.Load()}
}

// Run consumes until ctx is done, then commits what was processed, leaves the group, closes
// the client and returns nil. It returns an error only if the client cannot be created or
// Run was already called: a Consumer runs once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("kafka: Consumer.Run called more than once")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.ClientID("recoup"),
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topic),
		// A new group starts at the beginning of the topic: events produced before
		// Recoup first consumed must not be lost.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Never record events of aborted producer transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
	}
	cl, err := kgo.NewClient(append(opts, c.kgoOpts...)...)
	if err != nil {
		return fmt.Errorf("kafka: creating client: %w", err)
	}
	c.log.Info("kafka consumer started", "brokers", strings.Join(c.cfg.Brokers, ","))

	pollBackoff := newBackoff()
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, maxPollRecords)
		if fetches.IsClientClosed() {
			break
		}
		var fetchErrs int
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			fetchErrs++
			c.log.Warn("kafka fetch error", "fetch_topic", topic, "partition", partition, "error", err)
		})
		c.processBatch(ctx, cl, fetches)
		if ctx.Err() == nil {
			c.commit(ctx, cl, "batch")
		}
		cl.AllowRebalance()
		if fetchErrs > 0 && fetches.NumRecords() == 0 {
			// Do not spin on a persistent error (kgo keeps retrying internally).
			sleep(ctx, pollBackoff.next())
		} else {
			pollBackoff.reset()
		}
	}

	// ctx is done: commit what was recorded, with a context of our own.
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	c.commit(commitCtx, cl, "shutdown")
	cancel()
	cl.CloseAllowingRebalance() // leaves the group (OnPartitionsRevoked commits again if needed)
	c.log.Info("kafka consumer stopped", "recorded", c.recorded.Load(), "rejected", c.rejected.Load(), "retries", c.retries.Load())
	return nil
}

// processBatch processes each partition's records in order, marking each record once it is
// durable. It stops at the first record not processed because ctx is done.
func (c *Consumer) processBatch(ctx context.Context, cl *kgo.Client, fetches kgo.Fetches) {
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			if ctx.Err() != nil || !c.process(ctx, r) {
				return
			}
			cl.MarkCommitRecords(r)
		}
	})
}

// process records (or rejects) one record, retrying transient failures. It returns false
// only when ctx is done before the record is durable.
func (c *Consumer) process(ctx context.Context, r *kgo.Record) bool {
	b := newBackoff()
	for attempt := 1; ; attempt++ {
		err := c.handle(ctx, r.Value)
		if err == nil {
			c.recorded.Add(1)
			return true
		}
		if rej, ok := errors.AsType[*Rejection](err); ok {
			reason := ""
			if rej != nil {
				reason = rej.Reason
			}
			return c.rejectRecord(ctx, r, reason)
		}
		if !c.retry(ctx, b, r, attempt, "recording event failed; retrying", err) {
			return false
		}
	}
}

// rejectRecord stores a rejected record, retrying transient failures.
func (c *Consumer) rejectRecord(ctx context.Context, r *kgo.Record, reason string) bool {
	b := newBackoff()
	for attempt := 1; ; attempt++ {
		err := c.reject(ctx, r.Value, reason)
		if err == nil {
			c.rejected.Add(1)
			// Never log r.Value: it may contain personal data.
			c.log.Warn("kafka message rejected",
				"partition", r.Partition, "offset", r.Offset, "reason", reason)
			return true
		}
		if !c.retry(ctx, b, r, attempt, "storing rejected message failed; retrying", err) {
			return false
		}
	}
}

// retry logs a transient failure and waits for the next attempt. It returns false when ctx
// is done.
func (c *Consumer) retry(ctx context.Context, b *backoff, r *kgo.Record, attempt int, msg string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	d := b.next()
	c.retries.Add(1)
	c.log.Warn("kafka "+msg,
		"partition", r.Partition, "offset", r.Offset, "attempt", attempt, "retry_in", d, "error", err)
	return sleep(ctx, d)
}

// commit commits the marked offsets; a failure is logged: the marks stay and are committed
// by the next commit (or redelivered, which the event log deduplicates).
func (c *Consumer) commit(ctx context.Context, cl *kgo.Client, when string) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("kafka offset commit failed", "when", when, "error", err)
	}
}

// onRevoked runs while no batch is being processed (BlockRebalanceOnPoll), and when the
// client leaves the group on close. It commits the marks for the partitions being revoked.
func (c *Consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.log.Info("kafka partitions revoked", "partitions", fmt.Sprint(revoked[c.cfg.Topic]))
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	c.commit(ctx, cl, "revoke")
}

func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.log.Warn("kafka partitions lost; uncommitted records will be delivered again", "partitions", fmt.Sprint(lost[c.cfg.Topic]))
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.d = 0 }

// next returns 100ms, 200ms, 400ms, … up to 10s.
func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = backoffMin
	case b.d < backoffMax:
		b.d = min(2*b.d, backoffMax)
	}
	return b.d
}

// sleep waits for d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
