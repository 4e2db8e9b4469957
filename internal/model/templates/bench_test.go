package templates_test

// Benchmarks of the per-decision template work (prompt and message rendering) and, apart,
// of loading the prompt set (a start-up and reload cost, not a per-decision one).
//
//	go test -run '^$' -bench . -benchmem ./internal/templates
//
// scripts/bench-decision.sh runs these with -count 6 for benchstat.

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/templates"
)

// benchSet loads the embedded prompt set once, outside any timed loop.
func benchSet(b *testing.B) *templates.Set {
	b.Helper()
	s, err := templates.Load("")
	if err != nil {
		b.Fatalf(`Load(""): %v`, err)
	}
	return s
}

// benchPromptData is what buildPrompt (activities/decide.go) passes for a typical pro
// customer on step 2: caps, tones and limits come from the shipped policy.
func benchPromptData(s *templates.Set) templates.PromptData {
	pol := s.Policy
	caps := pol.CapsFor("pro")
	return templates.PromptData{
		Step: 2, TotalSteps: len(pol.ScheduleDays), Plan: "pro", TenureDays: 740,
		LifetimeValue: "$1,188.00", AmountDue: "$99.00", FailureCode: "card_declined",
		PaymentsSucceeded: 11, PaymentsFailed: 1, EarlierRuns: 1, EarlierRunsRecovered: 1, MessagesThisRun: 1,
		AllowedChannels: []string{"email", "sms"}, Language: "en-US", Tones: pol.Tones,
		MaxDiscountPercent: caps.MaxDiscountPercent, MaxExtensionDays: caps.MaxExtensionDays,
		SMSMaxChars: pol.SMSMaxChars, EmailMaxChars: pol.EmailMaxChars, SubjectMaxChars: pol.SubjectMaxChars,
	}
}

// benchMessages are the message data of a decision with an incentive, per locale, with
// texts of the length the model typically writes.
var benchMessages = []struct {
	name string
	data templates.MessageData
}{
	{"en", templates.MessageData{FirstName: "Ada", Subject: "Your payment didn't go through",
		Message: "We couldn't charge your card for $99.00. It happens - updating your card takes a minute, and your Pro features stay on meanwhile.",
		Tone:    "friendly", AmountDue: "$99.00", Language: "en-US"}},
	{"es", templates.MessageData{FirstName: "Lucía", Subject: "Tu pago no se ha podido procesar",
		Message: "No hemos podido cobrar tu pago de 29,00 €. Puede pasar: actualizar tu tarjeta solo lleva un minuto y tu cuenta sigue activa.",
		Tone:    "helpful", AmountDue: "29,00 €", Language: "es-ES"}},
	{"de", templates.MessageData{FirstName: "Jonas", Subject: "Ihre Zahlung ist nicht durchgegangen",
		Message: "Wir konnten Ihre Zahlung von 499,00 € nicht einziehen. Das kommt vor - Ihre Karte ist in einer Minute aktualisiert.",
		Tone:    "friendly", AmountDue: "499,00 €", Language: "de-DE"}},
}

func init() {
	expires := time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC)
	for i := range benchMessages {
		d := &benchMessages[i].data
		d.Incentive = templates.Incentive{Kind: recoup.IncentiveExtensionDays, Value: 7, Expires: templates.FormatDate(expires, d.Language)}
		d.PaymentURL = "https://pay.example.com/invoices/inv_0123456789?customer=cus_0123456789"
		d.UnsubscribeURL = "https://pay.example.com/unsubscribe?customer=cus_0123456789"
	}
}

// BenchmarkPrompt renders the system and user prompts, per A/B variant ("" is the default).
func BenchmarkPrompt(b *testing.B) {
	s := benchSet(b)
	d := benchPromptData(s)
	for _, v := range []struct{ name, variant string }{{"default", ""}, {"empathetic", "empathetic"}} {
		b.Run(v.name, func(b *testing.B) {
			sys, usr, err := s.Prompt(v.variant, d)
			if err != nil || sys == "" || usr == "" {
				b.Fatalf("Prompt(%q) = %d, %d bytes, %v", v.variant, len(sys), len(usr), err)
			}
			b.SetBytes(int64(len(sys) + len(usr)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Prompt(v.variant, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEmail renders an email's subject, text and HTML bodies, per locale.
func BenchmarkEmail(b *testing.B) {
	s := benchSet(b)
	for _, m := range benchMessages {
		b.Run(m.name, func(b *testing.B) {
			if got := s.Locale(m.data.Language); got != m.name {
				b.Fatalf("Locale(%q) = %q, want %q", m.data.Language, got, m.name)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := s.Email(m.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSMS renders an SMS body, per locale.
func BenchmarkSMS(b *testing.B) {
	s := benchSet(b)
	for _, m := range benchMessages {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.SMS(m.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad loads and lints the embedded prompt set: a start-up (and hot-reload)
// cost, paid once per set, not per decision.
func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := templates.Load(""); err != nil {
			b.Fatal(err)
		}
	}
}
