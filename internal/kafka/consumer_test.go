package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/kafka"
)

// A batch with duplicates and a poison message on two partitions: every valid message is
// handled once per delivery and recorded once, the poison one is stored as rejected without
// blocking its partition, and the offsets are committed to the end while Run is running.
// The consumer uses the default topic and group.
func TestBatchWithDuplicatesAndPoison(t *testing.T) {
	addrs := newCluster(t, 2, kafka.DefaultTopic)
	poison := []byte(`{"id":"evt_poison","email":"alice@example.com"`) // truncated JSON
	msgs := []msg{
		{0, event("evt_1", 0)},
		{1, event("evt_5", 1)},
		{0, event("evt_2", 0)},
		{1, event("evt_6", 1)},
		{0, event("evt_1", 0)}, // duplicate
		{1, event("evt_5", 1)}, // duplicate
		{0, poison},
		{1, event("evt_6", 1)}, // duplicate
		{0, event("evt_3", 0)},
		{0, event("evt_4", 0)},
	}
	produce(t, addrs, kafka.DefaultTopic, msgs...)

	log, rej, logs := newEventLog(), newRejected(), &lockedBuffer{}
	c, err := kafka.New(kafka.Config{Brokers: addrs}, log.Handle, rej.Reject, newLogger(logs), testOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, c)
	receive(t, log.signal, len(msgs))
	receive(t, rej.calls, 1)
	waitCommitted(t, addrs, kafka.DefaultGroup, kafka.DefaultTopic, map[int32]int64{0: 6, 1: 4})
	r.stop(t)

	events, calls := log.snapshot()
	for p := range int32(2) {
		if got, want := byPartition(t, calls, msgs)[p], values(msgs, p); !slices.Equal(got, want) {
			t.Errorf("partition %d handled\n%q\nwant\n%q", p, got, want)
		}
	}
	var ids []string
	for id := range events {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []string{"evt_1", "evt_2", "evt_3", "evt_4", "evt_5", "evt_6"}; !slices.Equal(ids, want) {
		t.Errorf("recorded %v, want %v", ids, want)
	}
	rows := rej.snapshot()
	if len(rows) != 1 || rows[0].value != string(poison) || !strings.HasPrefix(rows[0].reason, "invalid JSON") {
		t.Errorf("rejected = %+v, want the poison message with an invalid JSON reason", rows)
	}
	if got, want := c.Stats(), (kafka.Stats{Recorded: 9, Rejected: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if got := committed(t, addrs, kafka.DefaultGroup, kafka.DefaultTopic, 2); got[0] != 6 || got[1] != 4 {
		t.Errorf("committed after stop = %v, want 0:6 1:4", got)
	}

	out := logs.String()
	var warn string
	for line := range strings.Lines(out) {
		if strings.Contains(line, "message rejected") {
			warn = line
		}
	}
	for _, want := range []string{"level=WARN", "topic=" + kafka.DefaultTopic, "partition=0", "offset=3", `reason="invalid JSON`} {
		if !strings.Contains(warn, want) {
			t.Errorf("rejection log %q lacks %s", warn, want)
		}
	}
	if strings.Contains(out, "alice@example.com") || strings.Contains(out, "evt_poison") {
		t.Errorf("the log contains the rejected message:\n%s", out)
	}
}

// A transient failure retries the same record (3 failures, then success) without skipping
// it or reordering the partition.
func TestTransientFailureRetriesSameRecord(t *testing.T) {
	const topic = "events"
	addrs := newCluster(t, 2, topic)
	var msgs []msg
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, msg{0, event(fmt.Sprintf("evt_%d", i), 0)})
	}
	msgs = append(msgs, msg{1, event("evt_p1", 1)})
	produce(t, addrs, topic, msgs...)

	log, rej := newEventLog(), newRejected()
	log.fail = func(id string, attempt int) error {
		if id == "evt_3" && attempt <= 3 {
			return errors.New("postgres: connection refused")
		}
		return nil
	}
	c, err := kafka.New(kafka.Config{Brokers: addrs, Topic: topic, Group: "g"}, log.Handle, rej.Reject, nil, testOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, c)
	receive(t, log.signal, len(msgs)+3)
	waitCommitted(t, addrs, "g", topic, map[int32]int64{0: 5, 1: 1})
	r.stop(t)

	events, calls := log.snapshot()
	e := func(i int) string { return string(event(fmt.Sprintf("evt_%d", i), 0)) }
	want := []string{e(1), e(2), e(3), e(3), e(3), e(3), e(4), e(5)}
	if got := byPartition(t, calls, msgs)[0]; !slices.Equal(got, want) {
		t.Errorf("partition 0 handled\n%q\nwant\n%q", got, want)
	}
	if len(events) != 6 {
		t.Errorf("recorded %d events, want 6", len(events))
	}
	if got, want := c.Stats(), (kafka.Stats{Recorded: 6, Retries: 3}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if rows := rej.snapshot(); len(rows) != 0 {
		t.Errorf("rejected %+v, want nothing", rows)
	}
}

// A RejectFunc that fails is retried like a transient error; the partition continues after.
func TestRejectFailureIsRetried(t *testing.T) {
	const topic = "events"
	addrs := newCluster(t, 1, topic)
	msgs := []msg{{0, event("evt_1", 0)}, {0, []byte("not json")}, {0, event("evt_2", 0)}}
	produce(t, addrs, topic, msgs...)

	log, rej := newEventLog(), newRejected()
	rej.fails = 2
	c, err := kafka.New(kafka.Config{Brokers: addrs, Topic: topic, Group: "g"}, log.Handle, rej.Reject, nil, testOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, c)
	receive(t, log.signal, 3)
	receive(t, rej.calls, 1)
	waitCommitted(t, addrs, "g", topic, map[int32]int64{0: 3})
	r.stop(t)

	_, calls := log.snapshot()
	if got, want := byPartition(t, calls, msgs)[0], values(msgs, 0); !slices.Equal(got, want) {
		t.Errorf("handled %q, want %q (the handler is not called again for a rejected message)", got, want)
	}
	if got, want := c.Stats(), (kafka.Stats{Recorded: 2, Rejected: 1, Retries: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// Stopping a consumer commits what it recorded; a new consumer in the same group resumes
// there: it gets the record that was in flight at the stop again (at least once), then the
// rest, and nothing recorded before the stop.
func TestRestartResumesAfterCommitted(t *testing.T) {
	const topic, group = "events", "g"
	addrs := newCluster(t, 1, topic)
	m := func(i int) msg { return msg{0, event(fmt.Sprintf("evt_%d", i), 0)} }
	produce(t, addrs, topic, m(1), m(2), m(3), m(4))

	// The first consumer records evt_1 and evt_2 and is stopped while evt_3 is in flight.
	first := newEventLog()
	inFlight := make(chan struct{})
	handle := func(ctx context.Context, value []byte) error {
		if string(value) == string(m(3).value) {
			close(inFlight)
			<-ctx.Done()
			return ctx.Err()
		}
		return first.Handle(ctx, value)
	}
	c1, err := kafka.New(kafka.Config{Brokers: addrs, Topic: topic, Group: group}, handle, newRejected().Reject, nil, testOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r1 := start(t, c1)
	receive(t, first.signal, 2)
	waitClosed(t, inFlight)
	r1.stop(t)
	if got, want := c1.Stats(), (kafka.Stats{Recorded: 2}); got != want {
		t.Errorf("first Stats = %+v, want %+v", got, want)
	}
	if got := committed(t, addrs, group, topic, 1); got[0] != 2 {
		t.Errorf("committed after stop = %v, want 0:2", got)
	}

	produce(t, addrs, topic, m(5), m(6))
	second := newEventLog()
	c2, err := kafka.New(kafka.Config{Brokers: addrs, Topic: topic, Group: group}, second.Handle, newRejected().Reject, nil, testOpts...)
	if err != nil {
		t.Fatal(err)
	}
	r2 := start(t, c2)
	receive(t, second.signal, 4)
	waitCommitted(t, addrs, group, topic, map[int32]int64{0: 6})
	r2.stop(t)

	_, calls := second.snapshot()
	var got []string
	for _, c := range calls {
		got = append(got, string(c))
	}
	want := []string{string(m(3).value), string(m(4).value), string(m(5).value), string(m(6).value)}
	if !slices.Equal(got, want) {
		t.Errorf("second consumer handled\n%q\nwant\n%q", got, want)
	}
}

// A second member joins while the first one is consuming: partitions move between members
// (the new member records messages), every message is recorded, the first delivery of each
// record follows its partition's order, and the offsets end committed.
func TestRebalanceLosesNothing(t *testing.T) {
	const topic, group, partitions = "events", "g", 4
	addrs := newCluster(t, partitions, topic)
	var all []msg
	next := 0
	// produceN produces n messages round-robin over the partitions.
	produceN := func(n int) {
		var batch []msg
		for range n {
			next++
			p := int32(next % partitions)
			batch = append(batch, msg{p, event(fmt.Sprintf("evt_%d", next), p)})
		}
		all = append(all, batch...)
		produce(t, addrs, topic, batch...)
	}
	log := newEventLog()
	var seenMu sync.Mutex
	seen := map[string]bool{}
	firstSeen := make(chan string, 1000)
	handle := func(ctx context.Context, value []byte) error {
		err := log.handle(ctx, value)
		seenMu.Lock()
		defer seenMu.Unlock()
		if err == nil && !seen[string(value)] {
			seen[string(value)] = true
			firstSeen <- string(value)
		}
		return err
	}
	newConsumer := func() *kafka.Consumer {
		c, err := kafka.New(kafka.Config{Brokers: addrs, Topic: topic, Group: group}, handle, newRejected().Reject, nil, testOpts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	a := newConsumer()
	ra := start(t, a)
	produceN(40)
	receive(t, firstSeen, 40) // a owns every partition
	b := newConsumer()
	rb := start(t, b)
	// Produce small waves until the rebalance has given b partitions with records.
	deadline := time.Now().Add(waitTimeout)
	for b.Stats().Recorded == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second member never recorded anything")
		}
		produceN(partitions)
		receive(t, firstSeen, partitions)
	}
	produceN(40)
	receive(t, firstSeen, 40)
	want := map[int32]int64{}
	for _, m := range all {
		want[m.partition]++
	}
	waitCommitted(t, addrs, group, topic, want)
	ra.stop(t)
	rb.stop(t)

	events, calls := log.snapshot()
	if len(events) != len(all) {
		t.Errorf("recorded %d events, want %d", len(events), len(all))
	}
	if a.Stats().Recorded == 0 || b.Stats().Recorded == 0 {
		t.Errorf("recorded by a: %d, by b: %d; want both > 0", a.Stats().Recorded, b.Stats().Recorded)
	}
	// Redeliveries are allowed, but the first delivery of each record follows the
	// partition's order.
	for p, got := range byPartition(t, calls, all) {
		var first []string
		for _, v := range got {
			if !slices.Contains(first, v) {
				first = append(first, v)
			}
		}
		if want := values(all, p); !slices.Equal(first, want) {
			t.Errorf("partition %d first deliveries\n%q\nwant\n%q", p, first, want)
		}
	}
	t.Logf("recorded %d events, %d handler calls (a %d, b %d)", len(events), len(calls), a.Stats().Recorded, b.Stats().Recorded)
}

func TestNewValidatesConfig(t *testing.T) {
	ok := func(context.Context, []byte) error { return nil }
	rej := func(context.Context, []byte, string) error { return nil }
	for _, tc := range []struct {
		name string
		cfg  kafka.Config
		want string // "" for valid
	}{
		{"defaults", kafka.Config{Brokers: []string{"localhost:9092"}}, ""},
		{"several brokers", kafka.Config{Brokers: []string{"k1:9092", " k2:9093 ", "[::1]:9094", "k3"}, Topic: "billing.events_v1-x", Group: "g"}, ""},
		{"no brokers", kafka.Config{}, "KAFKA_BROKERS"},
		{"empty broker", kafka.Config{Brokers: []string{"k1:9092", ""}}, "KAFKA_BROKERS"},
		{"blank broker", kafka.Config{Brokers: []string{"  "}}, "KAFKA_BROKERS"},
		{"bad port", kafka.Config{Brokers: []string{"k1:port"}}, "KAFKA_BROKERS"},
		{"port out of range", kafka.Config{Brokers: []string{"k1:70000"}}, "KAFKA_BROKERS"},
		{"missing host", kafka.Config{Brokers: []string{":9092"}}, "KAFKA_BROKERS"},
		{"url", kafka.Config{Brokers: []string{"kafka://k1:9092"}}, "KAFKA_BROKERS"},
		{"comma list in one entry", kafka.Config{Brokers: []string{"k1:9092,k2:9092"}}, "KAFKA_BROKERS"},
		{"topic with space", kafka.Config{Brokers: []string{"k1:9092"}, Topic: "recoup events"}, "KAFKA_TOPIC"},
		{"topic dot", kafka.Config{Brokers: []string{"k1:9092"}, Topic: ".."}, "KAFKA_TOPIC"},
		{"topic too long", kafka.Config{Brokers: []string{"k1:9092"}, Topic: strings.Repeat("t", 250)}, "KAFKA_TOPIC"},
		{"group control char", kafka.Config{Brokers: []string{"k1:9092"}, Group: "g\n1"}, "KAFKA_GROUP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kafka.New(tc.cfg, ok, rej, nil)
			if tc.want == "" {
				if err != nil || c == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one naming %s", err, tc.want)
			}
		})
	}
	if _, err := kafka.New(kafka.Config{Brokers: []string{"k:1"}}, nil, rej, nil); err == nil {
		t.Error("New accepted a nil Handler")
	}
	if _, err := kafka.New(kafka.Config{Brokers: []string{"k:1"}}, ok, nil, nil); err == nil {
		t.Error("New accepted a nil RejectFunc")
	}
	// All errors are reported at once.
	_, err := kafka.New(kafka.Config{Topic: "bad topic"}, ok, rej, nil)
	if err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS") || !strings.Contains(err.Error(), "KAFKA_TOPIC") {
		t.Errorf("New error = %v, want one naming KAFKA_BROKERS and KAFKA_TOPIC", err)
	}
}

func TestRejectionError(t *testing.T) {
	var err error = fmt.Errorf("decode: %w", &kafka.Rejection{Reason: "invalid JSON"})
	var rej *kafka.Rejection
	if !errors.As(err, &rej) || rej.Reason != "invalid JSON" {
		t.Fatalf("errors.As(%v) = %v", err, rej)
	}
	if got := (&kafka.Rejection{Reason: "id conflict"}).Error(); !strings.Contains(got, "id conflict") {
		t.Errorf("Error() = %q", got)
	}
}

func TestRunOnce(t *testing.T) {
	addrs := newCluster(t, 1, kafka.DefaultTopic)
	c, err := kafka.New(kafka.Config{Brokers: addrs}, newEventLog().Handle, newRejected().Reject, nil, testOpts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run with a done context = %v, want nil", err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("second Run returned nil, want an error")
	}
}
