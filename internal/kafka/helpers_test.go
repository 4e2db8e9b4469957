package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/kafka"
)

// waitTimeout bounds every wait so that a broken test fails instead of hanging; it is not a
// timing assertion.
const waitTimeout = 30 * time.Second

// testOpts make the consumer react quickly to produced records in tests.
var testOpts = []kgo.Opt{kgo.FetchMaxWait(50 * time.Millisecond)}

func newCluster(t *testing.T, partitions int32, topic string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// msg is a record to produce to an explicit partition.
type msg struct {
	partition int32
	value     []byte
}

func event(id string, partition int32) []byte {
	b, err := json.Marshal(map[string]any{"id": id, "p": partition, "email": id + "@example.com"})
	if err != nil {
		panic(err)
	}
	return b
}

func produce(t *testing.T, addrs []string, topic string, msgs ...msg) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = &kgo.Record{Partition: m.partition, Value: m.value}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// committed reads the group's committed offsets of topic (partition -> offset, -1 if none).
func committed(t *testing.T, addrs []string, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	out := make(map[int32]int64)
	for p := range partitions {
		out[p] = -1
	}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("offset fetch partition %d: error code %d", p.Partition, p.ErrorCode)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// waitCommitted polls until the group's committed offsets equal want.
func waitCommitted(t *testing.T, addrs []string, group, topic string, want map[int32]int64) {
	t.Helper()
	fakes.EventuallyWithin(t, waitTimeout, func() bool {
		return fmt.Sprint(committed(t, addrs, group, topic, int32(len(want)))) == fmt.Sprint(want)
	}, fmt.Sprintf("the committed offsets to be %v", want))
}

// running is a Consumer running in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, c *kafka.Consumer) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; Run must return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if r.done == nil {
		return
	}
	select {
	case err := <-r.done:
		r.done = nil
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

// receive takes n values from ch, failing the test if they do not arrive.
func receive[T any](t *testing.T, ch <-chan T, n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	deadline := time.After(waitTimeout)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-deadline:
			t.Fatalf("received %d of %d values: %v", len(out), n, out)
		}
	}
	return out
}

// waitClosed waits for ch to be closed, failing the test if it is not.
func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a signal")
	}
}

// eventLog is a fake event log deduplicating by event id, like the PostgreSQL one.
type eventLog struct {
	mu     sync.Mutex
	events map[string][]byte
	calls  [][]byte // every Handle call, in order
	// fail, if set, is consulted before recording: a non-nil result is returned as is.
	fail  func(id string, attempt int) error
	tries map[string]int
	// signal receives the value of every Handle call that returned.
	signal chan []byte
}

func newEventLog() *eventLog {
	return &eventLog{events: map[string][]byte{}, tries: map[string]int{}, signal: make(chan []byte, 1000)}
}

func (l *eventLog) Handle(ctx context.Context, value []byte) error {
	err := l.handle(ctx, value)
	l.signal <- value
	return err
}

func (l *eventLog) handle(_ context.Context, value []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, bytes.Clone(value))
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(value, &ev); err != nil {
		return &kafka.Rejection{Reason: "invalid JSON: " + err.Error()}
	}
	if ev.ID == "" {
		return &kafka.Rejection{Reason: "missing id"}
	}
	l.tries[ev.ID]++
	if l.fail != nil {
		if err := l.fail(ev.ID, l.tries[ev.ID]); err != nil {
			return err
		}
	}
	if prev, ok := l.events[ev.ID]; ok {
		if !bytes.Equal(prev, value) {
			return &kafka.Rejection{Reason: "event id conflict"}
		}
		return nil // duplicate
	}
	l.events[ev.ID] = bytes.Clone(value)
	return nil
}

func (l *eventLog) snapshot() (events map[string][]byte, calls [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	events = make(map[string][]byte, len(l.events))
	for k, v := range l.events {
		events[k] = v
	}
	return events, append([][]byte(nil), l.calls...)
}

// rejected is a fake rejected_events table.
type rejected struct {
	mu    sync.Mutex
	rows  []rejectedRow
	fails int // fail this many calls first with a transient error
	calls chan rejectedRow
}

type rejectedRow struct {
	value  string
	reason string
}

func newRejected() *rejected { return &rejected{calls: make(chan rejectedRow, 100)} }

func (r *rejected) Reject(_ context.Context, value []byte, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		return errors.New("postgres: connection refused")
	}
	row := rejectedRow{string(value), reason}
	r.rows = append(r.rows, row)
	r.calls <- row
	return nil
}

func (r *rejected) snapshot() []rejectedRow {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rejectedRow(nil), r.rows...)
}

// lockedBuffer is a log sink safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func newLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// byPartition splits handler calls by the partition each value was produced to.
func byPartition(t *testing.T, calls [][]byte, msgs []msg) map[int32][]string {
	t.Helper()
	where := map[string]int32{}
	for _, m := range msgs {
		if p, ok := where[string(m.value)]; ok && p != m.partition {
			t.Fatalf("test bug: %s produced to two partitions", m.value)
		}
		where[string(m.value)] = m.partition
	}
	out := map[int32][]string{}
	for _, c := range calls {
		p, ok := where[string(c)]
		if !ok {
			t.Fatalf("handler called with unknown value %s", c)
		}
		out[p] = append(out[p], string(c))
	}
	return out
}

func values(msgs []msg, partition int32) []string {
	var out []string
	for _, m := range msgs {
		if m.partition == partition {
			out = append(out, string(m.value))
		}
	}
	return out
}
