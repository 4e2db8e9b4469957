// Package policy holds the guardrails Recoup enforces on every decision, whatever the
// model answers: the follow-up schedule, quiet hours, allowed tones, incentive caps per
// plan, length limits and the deterministic rules used as the fallback. The policy is read
// from prompts/policy.yaml.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"golang.org/x/text/language"

	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// Policy is the parsed, validated policy file.
type Policy struct {
	ScheduleDays    []int            `yaml:"schedule_days"`
	FinalWaitDays   int              `yaml:"final_wait_days"`
	QuietHours      QuietHours       `yaml:"quiet_hours"`
	Tones           []string         `yaml:"tones"`
	Channels        []recoup.Channel `yaml:"channels"`
	ContactCap      ContactCap       `yaml:"contact_cap"`
	TokenBudget     int              `yaml:"prompt_token_budget"`
	Experiment      Experiment       `yaml:"experiment"`
	SMSMaxChars     int              `yaml:"sms_max_chars"`
	EmailMaxChars   int              `yaml:"email_max_chars"`
	SubjectMaxChars int              `yaml:"subject_max_chars"`
	OfferValidDays  int              `yaml:"offer_valid_days"`
	Plans           map[string]Caps  `yaml:"plans"`
	Rules           []Rule           `yaml:"rules"`
	// Spike configures failure-spike detection; absent means spike.DefaultConfig().
	Spike spike.Config `yaml:"spike"`
	// Guardrails are the word lists of guardrails.yaml (ParseGuardrails); without them
	// Check refuses every text.
	Guardrails *Guardrails `yaml:"-"`

	ruleTemplates []map[string]*template.Template // by language; "" is the English default
}

// QuietHours bounds the local time of day at which messages may go out.
type QuietHours struct {
	Start string `yaml:"start"` // "HH:MM"
	End   string `yaml:"end"`   // "HH:MM", after Start

	start, end time.Duration // offsets from local midnight
}

// Caps are the incentive limits of a plan.
type Caps struct {
	MaxDiscountPercent     int `yaml:"max_discount_percent"`
	MaxExtensionDays       int `yaml:"max_extension_days"`
	DiscountBudgetPerYear  int `yaml:"discount_budget_percent_per_year"` // summed percent offered over 365 days
	ExtensionBudgetPerYear int `yaml:"extension_budget_days_per_year"`   // summed days offered over 365 days
}

// ContactCap bounds the messages one customer gets across all runs.
type ContactCap struct {
	Messages int `yaml:"messages"`
	Days     int `yaml:"days"`
}

// CountFrom is the start of the window a step due at scheduledAt is counted in: messages sent
// at or after it count against the cap. The window is counted in whole days: it starts
// Days−1 days before the step was due, so that a message of a step due Days or more days
// earlier never counts, even when quiet hours or the worker delayed it (by less than a day).
// Messages sent after scheduledAt count too.
func (c ContactCap) CountFrom(scheduledAt time.Time) time.Time {
	return scheduledAt.Add(-time.Duration(c.Days-1) * 24 * time.Hour)
}

// ScheduleConflicts checks a schedule (days after the first failure) against the cap, counted
// the way CountFrom counts: every step must be able to send when every earlier step sent.
// It returns one error per step that could never send.
func (c ContactCap) ScheduleConflicts(scheduleDays []int) []error {
	var errs []error
	for i, day := range scheduleDays {
		var within []string
		for _, earlier := range scheduleDays[:i] {
			if day-earlier < c.Days {
				within = append(within, strconv.Itoa(earlier))
			}
		}
		if len(within) >= c.Messages {
			errs = append(errs, fmt.Errorf("contact_cap: step %d (day %d) could never send: the steps of days %s already use the %d messages allowed within %d days; space schedule_days out or raise contact_cap",
				i+1, day, strings.Join(within, ", "), c.Messages, c.Days))
		}
	}
	return errs
}

// Experiment is an A/B test of prompt variants.
type Experiment struct {
	Name     string    `yaml:"name"`
	Variants []Variant `yaml:"variants"`
}

// Variant is one arm of the experiment.
type Variant struct {
	Name   string `yaml:"name"`
	Weight int    `yaml:"weight"`
}

// VariantFor returns the customer's variant: the same for a customer as long as the
// experiment's name and weights stay the same. Empty when there is no experiment.
func (p *Policy) VariantFor(customerID string) string {
	total := 0
	for _, v := range p.Experiment.Variants {
		total += v.Weight
	}
	if total == 0 {
		return ""
	}
	h := fnv.New64a()
	h.Write([]byte(p.Experiment.Name + "\x00" + customerID))
	n := int(h.Sum64() % uint64(total))
	for _, v := range p.Experiment.Variants {
		if n < v.Weight {
			return v.Name
		}
		n -= v.Weight
	}
	return p.Experiment.Variants[len(p.Experiment.Variants)-1].Name
}

// Rule is one step of the deterministic fallback.
type Rule struct {
	Channel   recoup.Channel `yaml:"channel"`
	Tone      string         `yaml:"tone"`
	Incentive string         `yaml:"incentive"`
	Subject   string         `yaml:"subject"`
	Message   string         `yaml:"message"`
	// Translations by language ("es", "de"): subject and message; a language without one
	// uses the English subject and message above.
	Translations map[string]Translation `yaml:"translations"`
}

// Translation is a rule's subject and message in one language.
type Translation struct {
	Subject string `yaml:"subject"`
	Message string `yaml:"message"`
}

// Parse reads and validates a policy file. Errors name the field at fault.
func Parse(data []byte) (*Policy, error) {
	p := Policy{Spike: spike.DefaultConfig()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy.yaml: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("policy.yaml: %w", err)
	}
	return &p, nil
}

func (p *Policy) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(p.ScheduleDays) == 0 {
		bad("schedule_days: at least one step is required")
	}
	for i, d := range p.ScheduleDays {
		if d < 0 || (i > 0 && d <= p.ScheduleDays[i-1]) {
			bad("schedule_days[%d]: days must be ≥ 0 and increasing", i)
		}
	}
	if p.FinalWaitDays < 0 || p.FinalWaitDays > 60 {
		bad("final_wait_days: must be between 0 and 60")
	}
	var err error
	if p.QuietHours.start, err = parseClock(p.QuietHours.Start); err != nil {
		bad("quiet_hours.start: %v", err)
	}
	if p.QuietHours.end, err = parseClock(p.QuietHours.End); err != nil {
		bad("quiet_hours.end: %v", err)
	}
	if p.QuietHours.end <= p.QuietHours.start {
		bad("quiet_hours: end must be after start")
	}
	if len(p.Tones) == 0 {
		bad("tones: at least one tone is required")
	}
	if len(p.Channels) == 0 {
		bad("channels: at least one of email, sms is required")
	}
	for i, c := range p.Channels {
		if !c.Valid() {
			bad("channels[%d]: %q is not email or sms", i, c)
		}
	}
	if p.ContactCap.Messages < 1 || p.ContactCap.Days < 1 {
		bad("contact_cap: messages and days must be at least 1")
	} else {
		for _, e := range p.ContactCap.ScheduleConflicts(p.ScheduleDays) {
			bad("%s", e)
		}
	}
	if p.TokenBudget < 200 {
		bad("prompt_token_budget: must be at least 200")
	}
	seenVariant := map[string]bool{}
	for i, v := range p.Experiment.Variants {
		if v.Name == "" || strings.ContainsAny(v.Name, "/\\ .") {
			bad("experiment.variants[%d].name: %q must be a plain name", i, v.Name)
		}
		if seenVariant[v.Name] {
			bad("experiment.variants[%d].name: %q appears twice", i, v.Name)
		}
		seenVariant[v.Name] = true
		if v.Weight < 0 {
			bad("experiment.variants[%d].weight: must not be negative", i)
		}
	}
	if len(p.Experiment.Variants) > 0 && p.Experiment.Name == "" {
		bad("experiment.name: required when variants are listed")
	}
	if p.SMSMaxChars < 20 || p.SMSMaxChars > 1600 {
		bad("sms_max_chars: must be between 20 and 1600")
	}
	if p.EmailMaxChars < 50 {
		bad("email_max_chars: must be at least 50")
	}
	if p.SubjectMaxChars < 10 {
		bad("subject_max_chars: must be at least 10")
	}
	if p.OfferValidDays < 1 {
		bad("offer_valid_days: must be at least 1")
	}
	if _, ok := p.Plans["default"]; !ok {
		bad("plans.default: required")
	}
	for name, c := range p.Plans {
		if c.MaxDiscountPercent < 0 || c.MaxDiscountPercent > 100 {
			bad("plans.%s.max_discount_percent: must be between 0 and 100", name)
		}
		if c.MaxExtensionDays < 0 || c.MaxExtensionDays > 90 {
			bad("plans.%s.max_extension_days: must be between 0 and 90", name)
		}
		if c.DiscountBudgetPerYear < 0 || c.ExtensionBudgetPerYear < 0 {
			bad("plans.%s: yearly budgets must not be negative", name)
		}
	}
	if len(p.Rules) == 0 {
		bad("rules: at least one rule is required")
	}
	p.ruleTemplates = make([]map[string]*template.Template, len(p.Rules))
	for i, r := range p.Rules {
		if !r.Channel.Valid() {
			bad("rules[%d].channel: %q is not email or sms", i, r.Channel)
		}
		if !slices.Contains(p.Tones, r.Tone) {
			bad("rules[%d].tone: %q is not one of tones", i, r.Tone)
		}
		if !validIncentiveKind(r.Incentive) {
			bad("rules[%d].incentive: %q is not none, discount_percent or extension_days", i, r.Incentive)
		}
		if strings.TrimSpace(r.Subject) == "" {
			bad("rules[%d].subject: required", i)
		}
		p.ruleTemplates[i] = map[string]*template.Template{}
		texts := map[string]Translation{"": {Subject: r.Subject, Message: r.Message}}
		for lang, tr := range r.Translations {
			if _, err := language.ParseBase(lang); err != nil || strings.Contains(lang, "-") {
				bad("rules[%d].translations.%s: not a language code like es or de", i, lang)
				continue
			}
			if strings.TrimSpace(tr.Subject) == "" {
				bad("rules[%d].translations.%s.subject: required", i, lang)
			}
			texts[lang] = tr
		}
		for lang, tr := range texts {
			field := fmt.Sprintf("rules[%d].message", i)
			if lang != "" {
				field = fmt.Sprintf("rules[%d].translations.%s.message", i, lang)
			}
			t, err := template.New(field).Option("missingkey=error").Parse(tr.Message)
			if err != nil {
				bad("%s: %v", field, err)
				continue
			}
			// The rules are the fallback of last resort: a message that cannot be rendered
			// (e.g. a misspelt {{.AmountDue}}) or renders empty must fail here, at load time,
			// not in RulesDecision when the model is down.
			var b strings.Builder
			if err := t.Execute(&b, map[string]any{"AmountDue": "$49.00"}); err != nil {
				bad("%s: %v", field, err)
			} else if strings.TrimSpace(b.String()) == "" {
				bad("%s: required", field)
			}
			p.ruleTemplates[i][lang] = t
		}
	}
	if err := p.Spike.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validIncentiveKind(k string) bool {
	return k == recoup.IncentiveNone || k == recoup.IncentiveDiscountPercent || k == recoup.IncentiveExtensionDays
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * time.Hour, nil
		}
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// CapsFor returns the incentive caps of a plan (the default plan's when it is not listed).
func (p *Policy) CapsFor(plan string) Caps {
	if c, ok := p.Plans[plan]; ok {
		return c
	}
	return p.Plans["default"]
}

// Schedule returns the offsets of the steps from the first failure.
func (p *Policy) Schedule() []time.Duration {
	out := make([]time.Duration, len(p.ScheduleDays))
	for i, d := range p.ScheduleDays {
		out[i] = time.Duration(d) * 24 * time.Hour
	}
	return out
}

// NextAllowed returns the earliest instant at or after now that falls inside the quiet-hours
// window in loc (UTC when nil); see WindowAt, which also says until when.
func (q QuietHours) NextAllowed(now time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	w, err := q.WindowAt(now, Zones{Locs: []*time.Location{loc}})
	if err != nil {
		return now // not a parsed window
	}
	return w.Start
}
