package policy

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/money"
)

// Approval is the approval section of policy.yaml: when a step's message waits for a human
// (support approves, rejects or edits it) before it is sent. Absent or enabled: false, no
// message waits.
type Approval struct {
	Enabled bool `yaml:"enabled"`
	// Timeout is how long a held message waits; OnTimeout what happens then:
	// send_rules_without_incentive or skip.
	Timeout   Duration `yaml:"timeout"`
	OnTimeout string   `yaml:"on_timeout"`
	Rules     struct {
		// AmountDueAbove: per currency (ISO 4217), an amount written in major units
		// ("1000.00"); a run of another currency is never held for its amount.
		AmountDueAbove map[string]string `yaml:"amount_due_above"`
		// Plans: every message to a customer of one of these plans.
		Plans []string `yaml:"plans"`
		// DiscountAbovePercent, ExtensionAboveDays: an incentive above this (0: off).
		DiscountAbovePercent int `yaml:"discount_above_percent"`
		ExtensionAboveDays   int `yaml:"extension_above_days"`
		// FirstSMS: the first SMS ever sent to the customer.
		FirstSMS bool `yaml:"first_sms"`
	} `yaml:"rules"`

	amountAbove map[string]int64 // minor units, by canonical currency code
}

// Duration is a time.Duration written as "24h" or "90m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 24h or 90m", s)
	}
	*d = Duration(v)
	return nil
}

// maxApprovalTimeout bounds how long a message may wait for a human: the schedule's steps
// are days apart.
const maxApprovalTimeout = 7 * 24 * time.Hour

// validateApproval checks the approval section: every value written, enabled or not (so
// that turning it on cannot reveal a mistake); timeout and on_timeout are required when
// it is enabled.
func (p *Policy) validateApproval(bad *problems) {
	ap := &p.Approval
	if t := time.Duration(ap.Timeout); (ap.Enabled || t != 0) && (t < time.Minute || t > maxApprovalTimeout) {
		bad.add("approval.timeout: %s must be between 1m and 168h", t)
	}
	if (ap.Enabled || ap.OnTimeout != "") && ap.OnTimeout != recoup.ApprovalOnTimeoutRules && ap.OnTimeout != recoup.ApprovalOnTimeoutSkip {
		bad.add("approval.on_timeout: %q is not %s or %s", ap.OnTimeout, recoup.ApprovalOnTimeoutRules, recoup.ApprovalOnTimeoutSkip)
	}
	ap.amountAbove = map[string]int64{}
	for _, code := range sortedKeys(ap.Rules.AmountDueAbove) {
		c, err := money.ParseCurrency(code)
		if err != nil {
			bad.add("approval.rules.amount_due_above.%s: %v", code, err)
			continue
		}
		if c != code {
			bad.add("approval.rules.amount_due_above.%s: write the code in capitals (%s)", code, c)
			continue
		}
		minor, err := parseMajor(ap.Rules.AmountDueAbove[code], money.Exponent(c))
		if err != nil {
			bad.add("approval.rules.amount_due_above.%s: %v", code, err)
			continue
		}
		ap.amountAbove[c] = minor
	}
	for i, plan := range ap.Rules.Plans {
		if _, ok := p.Plans[plan]; !ok || plan == "default" {
			bad.add("approval.rules.plans[%d]: %q is not a plan listed under plans", i, plan)
		}
	}
	if v := ap.Rules.DiscountAbovePercent; v < 0 || v > 100 {
		bad.add("approval.rules.discount_above_percent: must be between 0 (off) and 100")
	}
	if v := ap.Rules.ExtensionAboveDays; v < 0 || v > 90 {
		bad.add("approval.rules.extension_above_days: must be between 0 (off) and 90")
	}
	if ap.Enabled && len(ap.Rules.AmountDueAbove) == 0 && len(ap.Rules.Plans) == 0 && ap.Rules.DiscountAbovePercent == 0 &&
		ap.Rules.ExtensionAboveDays == 0 && !ap.Rules.FirstSMS {
		bad.add("approval.rules: enabled without any rule; set one or enabled: false")
	}
}

// parseMajor reads a positive amount in major units ("1000", "1000.50") as minor units of
// a currency with exp decimals, refusing more decimals than the currency has.
func parseMajor(s string, exp int) (int64, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" || (strings.Contains(s, ".") && frac == "") {
		return 0, fmt.Errorf("%q is not an amount like 1000.00", s)
	}
	if len(frac) > exp {
		return 0, fmt.Errorf("%q has %d decimals; the currency has %d", s, len(frac), exp)
	}
	frac += strings.Repeat("0", exp-len(frac))
	n, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok || !n.IsInt64() || n.Sign() <= 0 {
		return 0, fmt.Errorf("%q must be a positive amount", s)
	}
	return n.Int64(), nil
}

// ApprovalFacts are what the approval rules look at for one decided message.
type ApprovalFacts struct {
	AmountMinor   int64
	Currency      string
	Plan          string
	Decision      recoup.Decision
	SMSSentBefore bool // an SMS was sent to the customer before (any run)
}

// ApprovalRules returns the rules that hold a decided message for approval, in a fixed
// order, each naming its threshold; none when approval is off or nothing is sent.
func (p *Policy) ApprovalRules(f ApprovalFacts) []string {
	ap := p.Approval
	if !ap.Enabled || !f.Decision.Channel.Valid() {
		return nil
	}
	var out []string
	if c, err := money.ParseCurrency(f.Currency); err == nil {
		if limit, ok := ap.amountAbove[c]; ok && f.AmountMinor > limit {
			out = append(out, fmt.Sprintf("amount_due_above %s %s", c, ap.Rules.AmountDueAbove[c]))
		}
	}
	if slices.Contains(ap.Rules.Plans, f.Plan) {
		out = append(out, "plan "+f.Plan)
	}
	inc := f.Decision.Incentive
	if v := ap.Rules.DiscountAbovePercent; v > 0 && inc.Kind == recoup.IncentiveDiscountPercent && inc.Value > v {
		out = append(out, fmt.Sprintf("discount_above_percent %d", v))
	}
	if v := ap.Rules.ExtensionAboveDays; v > 0 && inc.Kind == recoup.IncentiveExtensionDays && inc.Value > v {
		out = append(out, fmt.Sprintf("extension_above_days %d", v))
	}
	if ap.Rules.FirstSMS && f.Decision.Channel == recoup.ChannelSMS && !f.SMSSentBefore {
		out = append(out, "first_sms")
	}
	return out
}

// EditLimits returns the bounds an edit of a held message must stay within for a
// customer: the policy's tones and lengths, the channels allowed at this step, and the
// plan's caps lowered to what its yearly budgets leave (discountLeft, extensionLeft).
func (p *Policy) EditLimits(f Facts, discountLeft, extensionLeft int) recoup.EditLimits {
	caps := p.CapsFor(f.Plan)
	return recoup.EditLimits{
		Plan:  f.Plan,
		Tones: slices.Clone(p.Tones), Channels: slices.Clone(f.AllowedChannels),
		MaxDiscountPercent: max(0, min(caps.MaxDiscountPercent, discountLeft)),
		MaxExtensionDays:   max(0, min(caps.MaxExtensionDays, extensionLeft)),
		SMSMaxChars:        p.SMSMaxChars, EmailMaxChars: p.EmailMaxChars, SubjectMaxChars: p.SubjectMaxChars,
	}
}

// CheckChoice checks the parts of a message that need no word lists — channel, tone,
// incentive and lengths — against limits; Check applies it to every model answer, and the
// workflow's edit validator to every edit of a held message. It returns the violations.
func CheckChoice(l recoup.EditLimits, a Answer) []string {
	plan := l.Plan
	var v []string
	ch := recoup.Channel(a.Channel)
	switch {
	case ch == recoup.ChannelNone:
	case !ch.Valid():
		v = append(v, fmt.Sprintf("channel %q is not email, sms or none", a.Channel))
	case !slices.Contains(l.Channels, ch):
		v = append(v, fmt.Sprintf("channel %s is not allowed for this customer (allowed: %s)", ch, joinChannels(l.Channels)))
	}
	if !slices.Contains(l.Tones, a.Tone) {
		v = append(v, fmt.Sprintf("tone %q is not one of %s", a.Tone, strings.Join(l.Tones, ", ")))
	}
	switch a.Incentive.Kind {
	case recoup.IncentiveNone:
	case recoup.IncentiveDiscountPercent:
		if a.Incentive.Value < 1 || a.Incentive.Value > l.MaxDiscountPercent {
			v = append(v, fmt.Sprintf("discount %d%% is outside 1..%d%% for plan %q", a.Incentive.Value, l.MaxDiscountPercent, plan))
		}
	case recoup.IncentiveExtensionDays:
		if a.Incentive.Value < 1 || a.Incentive.Value > l.MaxExtensionDays {
			v = append(v, fmt.Sprintf("extension of %d days is outside 1..%d for plan %q", a.Incentive.Value, l.MaxExtensionDays, plan))
		}
	default:
		v = append(v, fmt.Sprintf("incentive kind %q is unknown", a.Incentive.Kind))
	}
	subject := strings.TrimSpace(Sanitize(a.Subject))
	message := strings.TrimSpace(Sanitize(a.Message))
	if ch != recoup.ChannelNone && message == "" {
		v = append(v, "message is empty")
	}
	switch ch {
	case recoup.ChannelSMS:
		if n := utf8.RuneCountInString(message); n > l.SMSMaxChars {
			v = append(v, fmt.Sprintf("SMS message has %d characters, more than %d", n, l.SMSMaxChars))
		}
	case recoup.ChannelEmail:
		if subject == "" {
			v = append(v, "email subject is empty")
		}
		if n := utf8.RuneCountInString(subject); n > l.SubjectMaxChars {
			v = append(v, fmt.Sprintf("subject has %d characters, more than %d", n, l.SubjectMaxChars))
		}
		if n := utf8.RuneCountInString(message); n > l.EmailMaxChars {
			v = append(v, fmt.Sprintf("email message has %d characters, more than %d", n, l.EmailMaxChars))
		}
	}
	return v
}

// ApprovalSummary describes the approval section in one line, for lint's report.
func (ap Approval) Summary() string {
	if !ap.Enabled {
		return "approval: off"
	}
	var rules []string
	codes := make([]string, 0, len(ap.Rules.AmountDueAbove))
	for c := range ap.Rules.AmountDueAbove {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		rules = append(rules, "amount due above "+ap.Rules.AmountDueAbove[c]+" "+c)
	}
	if len(ap.Rules.Plans) > 0 {
		rules = append(rules, "plans "+strings.Join(ap.Rules.Plans, ", "))
	}
	if v := ap.Rules.DiscountAbovePercent; v > 0 {
		rules = append(rules, fmt.Sprintf("discount above %d%%", v))
	}
	if v := ap.Rules.ExtensionAboveDays; v > 0 {
		rules = append(rules, fmt.Sprintf("extension above %d days", v))
	}
	if ap.Rules.FirstSMS {
		rules = append(rules, "first SMS to a customer")
	}
	return fmt.Sprintf("approval: on (%s); waits %s, then %s", strings.Join(rules, "; "), time.Duration(ap.Timeout), ap.OnTimeout)
}
