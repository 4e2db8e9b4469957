package customers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/recoup-dunning/recoup/internal/postgres"
)

// SeedCount is how many demo customers Seed creates.
const SeedCount = 36

var (
	firstNames = []string{"Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances", "Dennis",
		"Radia", "Edsger", "Hedy"}
	lastNames = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Allen",
		"Ritchie", "Perlman", "Dijkstra", "Lamarr"}
	profiles = []struct{ locale, zone, phone string }{
		{"en-US", "America/New_York", "+12025550%03d"},
		{"en-GB", "Europe/London", "+44207946%04d"}, // Ofcom's drama range; +447700900xxx fails E.164 validation
		{"es-ES", "Europe/Madrid", "+34600%06d"},
		{"de-DE", "Europe/Berlin", "+4915100%06d"},
		{"en-US", "America/Los_Angeles", "+14155550%03d"},
		{"en-AU", "Australia/Sydney", "+61491570%03d"},
	}
	plans = []string{"basic", "pro", "enterprise"}
)

// SeedCustomer returns the demo customer number i (1-based), deterministic.
func SeedCustomer(i int, now time.Time) postgres.Customer {
	p := profiles[i%len(profiles)]
	name := firstNames[i%len(firstNames)] + " " + lastNames[(i*5)%len(lastNames)]
	emailOK := i%7 != 3 // a few customers withdrew email consent
	smsOK := i%3 != 0   // a third have no SMS consent
	c := postgres.Customer{
		CustomerID:         fmt.Sprintf("cus_demo_%02d", i),
		Name:               name,
		Email:              fmt.Sprintf("customer%02d@example.com", i),
		Phone:              fmt.Sprintf(p.phone, 100+i),
		Locale:             p.locale,
		TimeZone:           p.zone,
		Plan:               plans[i%len(plans)],
		LifetimeValueMinor: int64(2900 * (3 + (i*7)%40)),
		EmailConsent:       emailOK,
		SMSConsent:         smsOK,
		CustomerSince:      now.AddDate(0, -(3 + (i*5)%48), 0).Truncate(24 * time.Hour),
		UpdatedAt:          now.AddDate(0, 0, -30),
	}
	c.EmailConsentSet, c.SMSConsentSet = &emailOK, &smsOK
	return c
}

// Seed loads the demo data set: SeedCount customers with varied plans, locales, time zones
// and consents, a year of monthly payments each (some failed and recovered), and earlier
// dunning runs for some. It is idempotent.
func Seed(ctx context.Context, st *postgres.Store, now time.Time) (int, error) {
	for i := 1; i <= SeedCount; i++ {
		c := SeedCustomer(i, now)
		if _, err := st.UpsertCustomer(ctx, c); err != nil {
			return 0, err
		}
		amount := int64(2900)
		if c.Plan == "pro" {
			amount = 9900
		} else if c.Plan == "enterprise" {
			amount = 49900
		}
		for m := 12; m >= 1; m-- {
			at := now.AddDate(0, -m, 0)
			inv := fmt.Sprintf("inv_hist_%02d_%02d", i, m)
			failed := (i+m)%9 == 0
			if err := seedPayment(ctx, st, c, inv, amount, at, !failed, "seed-1"); err != nil {
				return 0, err
			}
			if failed { // recovered by a retry two days later, after one dunning message
				if err := seedPayment(ctx, st, c, inv, amount, at.AddDate(0, 0, 2), true, "seed-2"); err != nil {
					return 0, err
				}
				wf := "dunning-" + inv
				if err := st.FinishRun(ctx, wf, inv, c.CustomerID, "recovered", "retry succeeded", 1, at.AddDate(0, 0, 2)); err != nil {
					return 0, err
				}
			}
		}
	}
	return SeedCount, nil
}

func seedPayment(ctx context.Context, st *postgres.Store, c postgres.Customer, inv string, amount int64, at time.Time, ok bool, attempt string) error {
	typ, code := "payment.succeeded", ""
	if !ok {
		typ, code = "payment.failed", "insufficient_funds"
	}
	id := fmt.Sprintf("evt_seed_%s_%s", inv, attempt)
	body, _ := json.Marshal(map[string]any{"type": typ, "event_id": id, "invoice_id": inv, "customer_id": c.CustomerID,
		"amount_minor": amount, "currency": "USD", "occurred_at": at.UTC().Format(time.RFC3339)})
	status := "paid"
	if !ok {
		status = "open"
	}
	_, err := st.RecordEvent(ctx, postgres.Event{EventID: id, Type: typ, Source: "seed", InvoiceID: inv, CustomerID: c.CustomerID,
		OccurredAt: at, Body: body,
		Attempt: &postgres.PaymentAttempt{AttemptID: attempt, Succeeded: ok, FailureCode: code, AmountMinor: amount, Currency: "USD"},
		Invoice: &postgres.Invoice{AmountMinor: amount, Currency: "USD", Status: status}})
	if errors.Is(err, postgres.ErrEventConflict) {
		return nil // seeded on an earlier day: keep that history
	}
	if err != nil {
		return err
	}
	return st.MarkDelivered(ctx, id)
}
