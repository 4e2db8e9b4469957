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
	// Approval says which messages wait for a human before they are sent (approval.go).
	Approval Approval `yaml:"approval"`
	// Holdout is the share of runs that gets the control treatment (holdout.go); off when
	// absent.
	Holdout Holdout `yaml:"holdout"`
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

// problems collects the faults validation finds, in the order it finds them.
type problems []error

func (ps *problems) add(format string, a ...any) { *ps = append(*ps, fmt.Errorf(format, a...)) }

func (p *Policy) validate() error {
	var bad problems
	p.validateSchedule(&bad)
	p.validateQuietHours(&bad)
	p.validateTonesAndChannels(&bad)
	p.validateContactCap(&bad)
	if p.TokenBudget < 200 {
		bad.add("prompt_token_budget: must be at least 200")
	}
	p.validateExperiment(&bad)
	p.validateLengths(&bad)
	p.validatePlans(&bad)
	p.validateRules(&bad)
	p.validateApproval(&bad)
	p.validateHoldout(&bad)
	if err := p.Spike.Validate(); err != nil {
		bad = append(bad, err)
	}
	return errors.Join(bad...)
}

// validateSchedule checks schedule_days and final_wait_days.
func (p *Policy) validateSchedule(bad *problems) {
	if len(p.ScheduleDays) == 0 {
		bad.add("schedule_days: at least one step is required")
	}
	for i, d := range p.ScheduleDays {
		if d < 0 || (i > 0 && d <= p.ScheduleDays[i-1]) {
			bad.add("schedule_days[%d]: days must be ≥ 0 and increasing", i)
		}
	}
	if p.FinalWaitDays < 0 || p.FinalWaitDays > 60 {
		bad.add("final_wait_days: must be between 0 and 60")
	}
}

// validateQuietHours parses quiet_hours into offsets from local midnight.
func (p *Policy) validateQuietHours(bad *problems) {
	var err error
	if p.QuietHours.start, err = parseClock(p.QuietHours.Start); err != nil {
		bad.add("quiet_hours.start: %v", err)
	}
	if p.QuietHours.end, err = parseClock(p.QuietHours.End); err != nil {
		bad.add("quiet_hours.end: %v", err)
	}
	if p.QuietHours.end <= p.QuietHours.start {
		bad.add("quiet_hours: end must be after start")
	}
}

// validateTonesAndChannels checks that tones and channels are listed and channels known.
func (p *Policy) validateTonesAndChannels(bad *problems) {
	if len(p.Tones) == 0 {
		bad.add("tones: at least one tone is required")
	}
	if len(p.Channels) == 0 {
		bad.add("channels: at least one of email, sms is required")
	}
	for i, c := range p.Channels {
		if !c.Valid() {
			bad.add("channels[%d]: %q is not email or sms", i, c)
		}
	}
}

// validateContactCap checks contact_cap and that every scheduled step could send under it.
func (p *Policy) validateContactCap(bad *problems) {
	if p.ContactCap.Messages < 1 || p.ContactCap.Days < 1 {
		bad.add("contact_cap: messages and days must be at least 1")
		return
	}
	for _, e := range p.ContactCap.ScheduleConflicts(p.ScheduleDays) {
		bad.add("%s", e)
	}
}

// validateExperiment checks the experiment's name and its variants' names and weights.
func (p *Policy) validateExperiment(bad *problems) {
	seenVariant := map[string]bool{}
	for i, v := range p.Experiment.Variants {
		if v.Name == "" || strings.ContainsAny(v.Name, "/\\ .") {
			bad.add("experiment.variants[%d].name: %q must be a plain name", i, v.Name)
		}
		if seenVariant[v.Name] {
			bad.add("experiment.variants[%d].name: %q appears twice", i, v.Name)
		}
		seenVariant[v.Name] = true
		if v.Weight < 0 {
			bad.add("experiment.variants[%d].weight: must not be negative", i)
		}
	}
	if len(p.Experiment.Variants) > 0 && p.Experiment.Name == "" {
		bad.add("experiment.name: required when variants are listed")
	}
}

// validateLengths checks the message length limits and offer_valid_days.
func (p *Policy) validateLengths(bad *problems) {
	if p.SMSMaxChars < 20 || p.SMSMaxChars > 1600 {
		bad.add("sms_max_chars: must be between 20 and 1600")
	}
	if p.EmailMaxChars < 50 {
		bad.add("email_max_chars: must be at least 50")
	}
	if p.SubjectMaxChars < 10 {
		bad.add("subject_max_chars: must be at least 10")
	}
	if p.OfferValidDays < 1 {
		bad.add("offer_valid_days: must be at least 1")
	}
}

// validatePlans checks that the default plan is listed and every plan's caps are in range.
func (p *Policy) validatePlans(bad *problems) {
	if _, ok := p.Plans["default"]; !ok {
		bad.add("plans.default: required")
	}
	for name, c := range p.Plans {
		if c.MaxDiscountPercent < 0 || c.MaxDiscountPercent > 100 {
			bad.add("plans.%s.max_discount_percent: must be between 0 and 100", name)
		}
		if c.MaxExtensionDays < 0 || c.MaxExtensionDays > 90 {
			bad.add("plans.%s.max_extension_days: must be between 0 and 90", name)
		}
		if c.DiscountBudgetPerYear < 0 || c.ExtensionBudgetPerYear < 0 {
			bad.add("plans.%s: yearly budgets must not be negative", name)
		}
	}
}

// validateRules checks every rule and compiles its message templates into p.ruleTemplates.
func (p *Policy) validateRules(bad *problems) {
	if len(p.Rules) == 0 {
		bad.add("rules: at least one rule is required")
	}
	p.ruleTemplates = make([]map[string]*template.Template, len(p.Rules))
	for i, r := range p.Rules {
		p.validateRuleFields(bad, i, r)
		p.ruleTemplates[i] = map[string]*template.Template{}
		for lang, tr := range ruleTexts(bad, i, r) {
			if t := compileRuleMessage(bad, i, lang, tr.Message); t != nil {
				p.ruleTemplates[i][lang] = t
			}
		}
	}
}

// validateRuleFields checks rule i's channel, tone, incentive and subject.
func (p *Policy) validateRuleFields(bad *problems, i int, r Rule) {
	if !r.Channel.Valid() {
		bad.add("rules[%d].channel: %q is not email or sms", i, r.Channel)
	}
	if !slices.Contains(p.Tones, r.Tone) {
		bad.add("rules[%d].tone: %q is not one of tones", i, r.Tone)
	}
	if !validIncentiveKind(r.Incentive) {
		bad.add("rules[%d].incentive: %q is not none, discount_percent or extension_days", i, r.Incentive)
	}
	if strings.TrimSpace(r.Subject) == "" {
		bad.add("rules[%d].subject: required", i)
	}
}

// ruleTexts returns rule i's texts by language ("" for English), checking its translations
// and leaving out those whose language code is not valid.
func ruleTexts(bad *problems, i int, r Rule) map[string]Translation {
	texts := map[string]Translation{"": {Subject: r.Subject, Message: r.Message}}
	for lang, tr := range r.Translations {
		if _, err := language.ParseBase(lang); err != nil || strings.Contains(lang, "-") {
			bad.add("rules[%d].translations.%s: not a language code like es or de", i, lang)
			continue
		}
		if strings.TrimSpace(tr.Subject) == "" {
			bad.add("rules[%d].translations.%s.subject: required", i, lang)
		}
		texts[lang] = tr
	}
	return texts
}

// compileRuleMessage parses rule i's message in lang and renders it once with a sample
// amount; nil when it does not parse. A template that parses is returned even when the
// trial render fails (the fault is recorded either way).
func compileRuleMessage(bad *problems, i int, lang, message string) *template.Template {
	field := fmt.Sprintf("rules[%d].message", i)
	if lang != "" {
		field = fmt.Sprintf("rules[%d].translations.%s.message", i, lang)
	}
	t, err := template.New(field).Option("missingkey=error").Parse(message)
	if err != nil {
		bad.add("%s: %v", field, err)
		return nil
	}
	// The rules are the fallback of last resort: a message that cannot be rendered
	// (e.g. a misspelt {{.AmountDue}}) or renders empty must fail here, at load time,
	// not in RulesDecision when the model is down.
	var b strings.Builder
	if err := t.Execute(&b, map[string]any{"AmountDue": "$49.00"}); err != nil {
		bad.add("%s: %v", field, err)
	} else if strings.TrimSpace(b.String()) == "" {
		bad.add("%s: required", field)
	}
	return t
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
