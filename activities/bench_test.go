package activities_test

// Benchmarks of the in-process work of one dunning decision, without the model call.
//
//	go test -run '^$' -bench . -benchmem ./activities
//
// scripts/bench-decision.sh runs these with -count 6 for benchstat.
//
// DecideStrategy itself needs PostgreSQL, so BenchmarkDecisionPipeline composes the same
// in-process steps the way activities/decide.go (and send.go for the message) does:
//
//  1. facts: the allowed channels and the amount due formatted for the customer's locale;
//  2. the customer's A/B variant;
//  3. the prompt: system and user messages rendered from the variant's templates
//     (buildPrompt, with the customer data sanitised as customerText does);
//  4. the answer schema sent with the request (policy.Schema, built per request);
//  5. the model's answer (a canned JSON string) decoded with openai.DecodeStrict;
//  6. policy.Check on it, and policy.RulesDecision when it has violations;
//  7. the send time: the customer's time zone loaded and the quiet hours applied;
//  8. the SMS rendered and its segments counted (the SMS length guard), and the email
//     rendered (subject, text and HTML), with the incentive date and links filled in.
//
// Excluded: the model call (network and inference: hundreds of milliseconds to seconds),
// every PostgreSQL read and write (contact cap and incentive budget counts, saving the
// decision, reading the customer at send time), the email/SMS provider and billing webhook
// calls, Temporal's activity dispatch, metrics and logging.
//
// Step 8 renders both messages for every decision, as `starter prompts preview` does;
// production renders the SMS at decision time only for SMS decisions and, at send time,
// only the chosen channel's message, so this is a slight upper bound.
//
// BenchmarkPreviewDecision cross-checks the hand-composed pipeline against the
// production code path: PreviewDecision (buildPrompt, askModel, smsTooLong and the message
// rendering, unexported here) with an in-process stub in place of the model client.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/segments"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
)

const (
	benchPaymentURL     = "https://pay.example.com/invoices/{invoice_id}?customer={customer_id}"
	benchUnsubscribeURL = "https://pay.example.com/unsubscribe?customer={customer_id}"
)

var benchNow = time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)

// benchAnswer is a model answer in the strict schema's JSON form.
func benchAnswer(channel, tone, kind string, value int, subject, message string) string {
	b, err := json.Marshal(map[string]any{"channel": channel, "tone": tone,
		"incentive": map[string]any{"kind": kind, "value": value}, "subject": subject, "message": message,
		"rationale": "Long-standing customer with a good payment record; a short, friendly reminder should be enough at this step."})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// benchCases are the sample customers of templates.Fixtures with an answer the model
// could give for them, plus one answer that breaks the policy (the rules then decide).
var benchCases = []struct {
	name, fixture, answer string
	decidedBy             string
}{
	{"llm/ada-pro-en", "ada-pro-en", benchAnswer("email", "friendly", recoup.IncentiveExtensionDays, 7,
		"Your payment didn't go through",
		"We couldn't charge your card for $99.00. It happens - updating your card takes a minute, and your Pro features stay on meanwhile. If you need a little more time, we've added 7 extra days to pay."),
		recoup.DecidedByLLM},
	{"llm/lucia-basic-es", "lucia-basic-es", benchAnswer("email", "helpful", recoup.IncentiveNone, 0,
		"Tu pago no se ha podido procesar",
		"No hemos podido cobrar tu pago de 29,00 €. Puede pasar: actualizar tu tarjeta solo lleva un minuto y tu cuenta sigue activa mientras tanto."),
		recoup.DecidedByLLM},
	{"llm/jonas-enterprise-de", "jonas-enterprise-de", benchAnswer("sms", "friendly", recoup.IncentiveDiscountPercent, 10, "",
		"Ihre Zahlung von 499,00 € ist nicht durchgegangen. Bitte aktualisieren Sie Ihre Karte."),
		recoup.DecidedByLLM},
	{"llm/sms-only-no-name", "sms-only-no-name", benchAnswer("sms", "helpful", recoup.IncentiveNone, 0, "",
		"Your payment of £99.00 didn't go through. Updating your card takes a minute."),
		recoup.DecidedByLLM},
	{"fallback/ada-pro-en", "ada-pro-en", benchAnswer("email", "threatening", recoup.IncentiveDiscountPercent, 50, "",
		"Pay now at https://evil.example/pay or write to billing@evil.example, or we will send you to collections."),
		recoup.DecidedByRules},
}

func benchSet(b testing.TB) *templates.Set {
	b.Helper()
	s, err := templates.Load("")
	if err != nil {
		b.Fatalf(`templates.Load(""): %v`, err)
	}
	return s
}

// benchInput is step 2 of 4 for a fixture customer, as the workflow passes it.
func benchInput(b testing.TB, name string) activities.DecideInput {
	b.Helper()
	fx, ok := templates.FixtureByName(name)
	if !ok {
		b.Fatalf("no fixture %q", name)
	}
	return activities.DecideInput{
		WorkflowID: "dunning-inv_0123456789", InvoiceID: "inv_0123456789", Step: 2, TotalSteps: 4,
		History: activities.CustomerHistory{CustomerID: "cus_" + fx.Name, Plan: fx.Plan, Locale: fx.Locale, TimeZone: fx.TimeZone,
			TenureDays: fx.TenureDays, LifetimeValueMinor: fx.LifetimeValueMinor,
			EmailReachable: fx.EmailReachable, SMSReachable: fx.SMSReachable,
			PaymentsSucceeded: fx.PaymentsSucceeded, PaymentsFailed: fx.PaymentsFailed, MessagesThisRun: 1},
		FailureCode: fx.FailureCode, AmountMinor: fx.AmountMinor, Currency: fx.Currency, Now: benchNow,
	}
}

// benchResult is what one pipeline run produces.
type benchResult struct {
	d                  recoup.Decision
	violations         []string
	sms                string
	smsSegments        int
	subject, text, htm string
}

// decisionPipeline is DecideStrategy's in-process work followed by the message rendering
// of the send activities; see the file comment for what it leaves out.
func decisionPipeline(set *templates.Set, in activities.DecideInput, firstName, content string) (benchResult, error) {
	var r benchResult
	pol := set.Policy
	h := in.History
	// 1. facts, with the failure code's decline class (declinePlan)
	decline, _ := set.Decline(in.FailureCode, in.Step, max(in.Failures, 1))
	facts := policy.Facts{
		Decline:         decline,
		Step:            in.Step,
		Plan:            h.Plan,
		AllowedChannels: benchAllowedChannels(h, in.Excluded, in.Channel, pol.Channels),
		AmountDue:       money.Format(in.AmountMinor, in.Currency, h.Locale),
		Language:        h.Locale,
	}
	// 2. variant
	variant := pol.VariantFor(h.CustomerID)
	// 3. prompt (buildPrompt)
	caps := pol.CapsFor(facts.Plan)
	allowed := make([]string, len(facts.AllowedChannels))
	for i, c := range facts.AllowedChannels {
		allowed[i] = string(c)
	}
	system, user, err := set.Prompt(variant, set.WithDecline(templates.PromptData{
		Step: in.Step, TotalSteps: in.TotalSteps, Plan: benchCustomerText(h.Plan), TenureDays: h.TenureDays,
		LifetimeValue: money.Format(h.LifetimeValueMinor, in.Currency, h.Locale), AmountDue: facts.AmountDue,
		FailureCode: benchCustomerText(in.FailureCode), PaymentsSucceeded: h.PaymentsSucceeded, PaymentsFailed: h.PaymentsFailed,
		EarlierRuns: h.EarlierRuns, EarlierRunsRecovered: h.EarlierRunsRecovered, MessagesThisRun: h.MessagesThisRun,
		AllowedChannels: allowed, Language: benchCustomerText(h.Locale), Tones: pol.Tones,
		MaxDiscountPercent: caps.MaxDiscountPercent, MaxExtensionDays: caps.MaxExtensionDays,
		SMSMaxChars: pol.SMSMaxChars, EmailMaxChars: pol.EmailMaxChars, SubjectMaxChars: pol.SubjectMaxChars,
	}, decline.Class))
	if err != nil {
		return r, err
	}
	// 4. the request the model would get (not sent)
	req := openai.Request{System: system, User: user, SchemaName: "dunning_decision", Schema: pol.Schema(),
		Temperature: 0.2, MaxTokens: 800}
	_ = req
	// 5. and 6. the answer, decoded strictly and checked; the rules decide on violations
	var ans policy.Answer
	if err := openai.DecodeStrict(content, &ans); err != nil {
		r.violations = []string{"model answer is not valid JSON for the schema: " + err.Error()}
	} else {
		r.d, r.violations = pol.Check(ans, facts)
	}
	if len(r.violations) > 0 {
		if r.d, err = pol.RulesDecision(facts); err != nil {
			return r, err
		}
	}
	// 7. send time
	w, err := pol.QuietHours.WindowAt(in.Now, policy.CustomerZones(policy.ZoneHints{TimeZone: h.TimeZone, Locale: h.Locale}))
	if err != nil {
		return r, err
	}
	r.d.SendAt, r.d.SendUntil = w.Start, w.End
	// 8. messages
	replacer := strings.NewReplacer("{invoice_id}", in.InvoiceID, "{customer_id}", h.CustomerID)
	msg := templates.MessageData{FirstName: firstName, Subject: r.d.Subject, Message: r.d.Message, Tone: r.d.Tone,
		AmountDue: facts.AmountDue, Link: set.Declines.Plan(decline.Class).Link,
		PaymentURL: replacer.Replace(benchPaymentURL), UnsubscribeURL: replacer.Replace(benchUnsubscribeURL),
		Language: h.Locale}
	if k := r.d.Incentive.Kind; k != recoup.IncentiveNone && k != "" {
		msg.Incentive = templates.Incentive{Kind: k, Value: r.d.Incentive.Value,
			Expires: templates.FormatDate(in.Now.AddDate(0, 0, pol.OfferValidDays), h.Locale)}
	}
	if r.sms, err = set.SMS(msg); err != nil {
		return r, err
	}
	r.smsSegments = segments.Of(r.sms).Segments
	r.subject, r.text, r.htm, err = set.Email(msg)
	return r, err
}

// benchAllowedChannels is activities.allowedChannels.
func benchAllowedChannels(h activities.CustomerHistory, excluded []recoup.Channel, only recoup.Channel, enabled []recoup.Channel) []recoup.Channel {
	var out []recoup.Channel
	if h.EmailReachable && !slices.Contains(excluded, recoup.ChannelEmail) {
		out = append(out, recoup.ChannelEmail)
	}
	if h.SMSReachable && !slices.Contains(excluded, recoup.ChannelSMS) {
		out = append(out, recoup.ChannelSMS)
	}
	out = slices.DeleteFunc(out, func(c recoup.Channel) bool { return !slices.Contains(enabled, c) })
	if only != "" && slices.Contains(out, only) {
		out = []recoup.Channel{only}
	}
	return out
}

// benchCustomerText is activities.customerText.
func benchCustomerText(s string) string {
	s = strings.Join(strings.Fields(policy.Sanitize(s)), " ")
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}

// BenchmarkDecisionPipeline is the in-process cost of one decision and its message,
// excluding the model call and PostgreSQL (see the file comment).
func BenchmarkDecisionPipeline(b *testing.B) {
	set := benchSet(b)
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			in := benchInput(b, tc.fixture)
			fx, _ := templates.FixtureByName(tc.fixture)
			r, err := decisionPipeline(set, in, fx.FirstName, tc.answer)
			switch {
			case err != nil:
				b.Fatal(err)
			case r.d.DecidedBy != tc.decidedBy:
				b.Fatalf("decided by %q (violations %q), want %q", r.d.DecidedBy, r.violations, tc.decidedBy)
			case r.d.Channel == recoup.ChannelSMS && r.smsSegments > templates.MaxSMSSegments:
				b.Fatalf("SMS takes %d segments: %q", r.smsSegments, r.sms)
			case r.text == "" || r.htm == "" || r.sms == "":
				b.Fatalf("empty message: %+v", r)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decisionPipeline(set, in, fx.FirstName, tc.answer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchLLM answers every request at once with a canned content: no network, no model.
type benchLLM struct{ content string }

func (m benchLLM) Complete(context.Context, openai.Request) (openai.Response, error) {
	return openai.Response{Content: m.content, Model: "bench-stub", FinishReason: "stop"}, nil
}

func (benchLLM) Model() string { return "bench-stub" }

// BenchmarkPreviewDecision runs the production composition (PreviewDecision: facts,
// buildPrompt, the rules decision, askModel with DecodeStrict and Check, the SMS segment
// guard, the email and SMS rendering) with a stub model and no store. It does not apply
// quiet hours, and it always computes the rules decision too.
func BenchmarkPreviewDecision(b *testing.B) {
	set := benchSet(b)
	ctx := context.Background()
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			a := &activities.DunningActivities{LLM: benchLLM{tc.answer}, PaymentURL: benchPaymentURL, UnsubscribeURL: benchUnsubscribeURL}
			fx, _ := templates.FixtureByName(tc.fixture)
			in := activities.PreviewInput{Decide: benchInput(b, tc.fixture), FirstName: fx.FirstName,
				InvoiceID: "inv_0123456789", CustomerID: "cus_" + fx.Name}
			p, err := activities.PreviewDecision(ctx, a, set, in)
			if err != nil {
				b.Fatal(err)
			}
			if p.Final.DecidedBy != tc.decidedBy {
				b.Fatalf("decided by %q (rejected: %q), want %q", p.Final.DecidedBy, p.ModelRejected, tc.decidedBy)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := activities.PreviewDecision(ctx, a, set, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
