package main

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// `starter consume` against franz-go's in-process Kafka cluster: a batch with duplicates and
// a poison message. Every valid event reaches its run once; the poison message is recorded
// as rejected with its reason and does not block the partition.
func TestConsumeKafkaBatchWithDuplicatesAndPoison(t *testing.T) {
	h := workertest.Start(t, workertest.Options{})
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "recoup.events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	now := time.Now().UTC()
	var values [][]byte
	for _, inv := range []string{"inv_k1", "inv_k2", "inv_k1", "POISON", "inv_k3", "inv_k2"} {
		if inv == "POISON" {
			values = append(values, []byte(`{"type":"payment.failed","event_id":`))
			continue
		}
		b, _ := json.Marshal(workertest.Failed("evt_"+inv, inv, "cus_"+inv, now))
		values = append(values, b)
	}
	for _, v := range values {
		if err := producer.ProduceSync(context.Background(), &kgo.Record{Topic: "recoup.events", Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.KafkaBrokers = cluster.ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consume(ctx, &deps{cfg: cfg, st: h.Store, tc: h.Client}, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	for _, inv := range []string{"inv_k1", "inv_k2", "inv_k3"} {
		h.Eventually("the first message of "+inv, func() bool { return h.Messages(inv) == 1 })
		if n := h.Mail.Accepted(recoup.WorkflowID(inv) + "/step-1/email"); n != 1 {
			t.Fatalf("%s: %d messages, want 1", inv, n)
		}
	}
	h.Eventually("the poison message recorded as rejected", func() bool {
		rej, err := h.Store.Rejected(context.Background(), "kafka", 10)
		return err == nil && len(rej) == 1
	})
	rej, _ := h.Store.Rejected(context.Background(), "kafka", 10)
	if string(rej[0].Body) != string(values[3]) || rej[0].Reason == "" {
		t.Fatalf("rejected = %+v", rej[0])
	}
	var rows int
	if err := h.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events WHERE source = 'kafka'`).Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("event log has %d kafka events, %v; want 3", rows, err)
	}
}
