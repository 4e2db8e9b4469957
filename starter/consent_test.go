package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// `starter customers consent` exports the ledger: a provider's opt-out shows with its
// source, time and evidence, as JSON lines or a table.
func TestCustomersConsentExportsTheLedger(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	yes := true
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_1", Email: "ada@example.com",
		EmailConsentSet: &yes, SMSConsentSet: &yes, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	key := "dunning-inv_1/step-1/email"
	if _, _, err := st.ReserveSend(ctx, postgres.Reservation{Key: key, WorkflowID: "dunning-inv_1", Step: 1, Channel: "email",
		CustomerID: "cus_1", InvoiceID: "inv_1"}); err != nil {
		t.Fatal(err)
	}
	res, err := st.RecordProviderEvent(ctx, postgres.ProviderEvent{Provider: "sendgrid", ProviderEventID: "sg_spam",
		IdempotencyKey: key, Kind: "spam_report", OptOut: true, OccurredAt: at.Add(time.Hour), Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runWithDeps(&deps{st: st}, "customers", "consent", "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	var last consentLine
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("output is not JSON lines: %v\n%s", err, out)
	}
	if last.Channel != "email" || last.Consent || last.Source != "sendgrid" || last.Evidence != res.OptOutEventID ||
		!last.At.Equal(at.Add(time.Hour)) || !last.Applied {
		t.Errorf("last ledger line = %+v, want the applied email opt-out from sendgrid", last)
	}
	table, err := runWithDeps(&deps{st: st}, "customers", "consent", "--format", "table", "cus_1")
	if err != nil || !strings.Contains(table, "SOURCE") || !strings.Contains(table, "sendgrid") {
		t.Errorf("table = %q, %v", table, err)
	}
	if _, err := runWithDeps(&deps{st: st}, "customers", "consent", "--format", "xml", "cus_1"); err == nil || !strings.Contains(err.Error(), "jsonl or table") {
		t.Errorf("--format xml: %v, want refused naming the formats", err)
	}
}
