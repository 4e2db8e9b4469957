package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	texttemplate "text/template"
	"unicode"

	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup"
)

// Facts are what the policy needs to know about the step being decided.
type Facts struct {
	Step            int              // 1-based
	Plan            string           // the customer's plan, for incentive caps
	AllowedChannels []recoup.Channel // consented, reachable and not opted out
	AmountDue       string           // formatted for the customer, e.g. "$49.00"
	Language        string           // the customer's BCP 47 locale, for the rules' translations
	Decline         DeclineFacts     // the failure's decline class and what its plan allows
}

// Answer is the model's answer, in the shape of Schema.
type Answer struct {
	Channel   string `json:"channel"`
	Tone      string `json:"tone"`
	Incentive struct {
		Kind  string `json:"kind"`
		Value int    `json:"value"`
	} `json:"incentive"`
	Subject   string `json:"subject"`
	Message   string `json:"message"`
	Rationale string `json:"rationale"`
}

// Schema returns the JSON Schema (OpenAI strict structured-output form) of Answer.
func (p *Policy) Schema() json.RawMessage {
	str := func(enum ...string) map[string]any {
		m := map[string]any{"type": "string"}
		if len(enum) > 0 {
			m["enum"] = enum
		}
		return m
	}
	s := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []string{"channel", "tone", "incentive", "subject", "message", "rationale"},
		"properties": map[string]any{
			"channel": str("email", "sms", "none"),
			"tone":    str(p.Tones...),
			"incentive": map[string]any{
				"type":                 "object",
				"additionalProperties": false,
				"required":             []string{"kind", "value"},
				"properties": map[string]any{
					"kind":  str(recoup.IncentiveNone, recoup.IncentiveDiscountPercent, recoup.IncentiveExtensionDays),
					"value": map[string]any{"type": "integer"},
				},
			},
			"subject":   str(),
			"message":   str(),
			"rationale": str(),
		},
	}
	b, _ := json.Marshal(s) // a map of strings and slices always marshals
	return b
}

// Check enforces the policy on a model answer. It returns the decision when the answer is
// usable, and the list of violations otherwise (then the caller falls back to RulesDecision).
func (p *Policy) Check(a Answer, f Facts) (recoup.Decision, []string) {
	caps := p.CapsFor(f.Plan)
	// Channel, tone, incentive and lengths: the same check as an edit of a held message.
	v := CheckChoice(p.EditLimits(f, caps.MaxDiscountPercent, caps.MaxExtensionDays), a)
	ch := recoup.Channel(a.Channel)
	inc := recoup.Incentive{Kind: a.Incentive.Kind, Value: a.Incentive.Value}
	if inc.Kind == recoup.IncentiveNone {
		inc.Value = 0
	}
	subject := strings.TrimSpace(Sanitize(a.Subject))
	message := strings.TrimSpace(Sanitize(a.Message))
	if ch != recoup.ChannelNone {
		// What the customer reads may not promise, threaten, state figures or carry
		// contact data (guardrails.yaml); the templates add the amount, offer and links.
		v = append(v, p.CheckText("subject", subject, inc, f.AmountDue)...)
		v = append(v, p.CheckText("message", message, inc, f.AmountDue)...)
		v = append(v, p.CheckDeclineText("subject", subject, f.Decline)...)
		v = append(v, p.CheckDeclineText("message", message, f.Decline)...)
	}
	if len(v) > 0 {
		return recoup.Decision{}, v
	}
	if ch == recoup.ChannelNone {
		inc = recoup.Incentive{Kind: recoup.IncentiveNone} // nothing is sent, so nothing is offered
	}
	return recoup.Decision{
		Step:         f.Step,
		Channel:      ch,
		Tone:         a.Tone,
		Incentive:    inc,
		Subject:      subject,
		Message:      message,
		Rationale:    strings.TrimSpace(Sanitize(a.Rationale)),
		DecidedBy:    recoup.DecidedByLLM,
		DeclineClass: f.Decline.Class,
	}, nil
}

// Sanitize removes control characters (keeping newlines and tabs) and invalid UTF-8.
func Sanitize(s string) string {
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
}

func joinChannels(cs []recoup.Channel) string {
	if len(cs) == 0 {
		return "none"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = string(c)
	}
	return strings.Join(parts, ", ")
}

// RulesDecision is the deterministic fallback decision for a step.
func (p *Policy) RulesDecision(f Facts) (recoup.Decision, error) {
	i := min(f.Step-1, len(p.Rules)-1)
	i = max(i, 0)
	r := p.Rules[i]
	d := recoup.Decision{Step: f.Step, Tone: r.Tone, Subject: r.Subject, DecidedBy: recoup.DecidedByRules,
		Incentive: recoup.Incentive{Kind: recoup.IncentiveNone}, DeclineClass: f.Decline.Class}
	switch {
	case f.Decline.Wait:
		d.Channel = recoup.ChannelNone
		d.Rationale = fmt.Sprintf("rules step %d: decline class %s: no message until a retry of the payment has failed", f.Step, f.Decline.Class)
		return d, nil
	case slices.Contains(f.AllowedChannels, r.Channel):
		d.Channel = r.Channel
	case len(f.AllowedChannels) > 0:
		d.Channel = f.AllowedChannels[0]
	default:
		d.Channel = recoup.ChannelNone
		d.Rationale = fmt.Sprintf("rules step %d: no consented, reachable channel; nothing sent", f.Step)
		return d, nil
	}
	caps := p.CapsFor(f.Plan)
	switch r.Incentive {
	case recoup.IncentiveDiscountPercent:
		if caps.MaxDiscountPercent > 0 {
			d.Incentive = recoup.Incentive{Kind: r.Incentive, Value: caps.MaxDiscountPercent}
		}
	case recoup.IncentiveExtensionDays:
		if caps.MaxExtensionDays > 0 {
			d.Incentive = recoup.Incentive{Kind: r.Incentive, Value: caps.MaxExtensionDays}
		}
	}
	lang := ""
	if t, err := language.Parse(f.Language); err == nil {
		base, _ := t.Base()
		if _, ok := r.Translations[base.String()]; ok {
			lang = base.String()
			d.Subject = r.Translations[lang].Subject
		}
	}
	var b strings.Builder
	tmpl, where, err := p.rulesMessage(i, lang, f)
	if err != nil {
		return recoup.Decision{}, err
	}
	if err := tmpl.Execute(&b, map[string]any{"AmountDue": f.AmountDue}); err != nil {
		return recoup.Decision{}, fmt.Errorf("%s: %w", where, err)
	}
	d.Message = b.String()
	d.Rationale = fmt.Sprintf("rules step %d: %s on %s, incentive %s", f.Step, d.Tone, d.Channel, d.Incentive.Kind)
	if f.Decline.Class != "" {
		d.Rationale += ", decline class " + string(f.Decline.Class)
	}
	if f.Decline.NoRetryWhy != "" {
		d.Rationale += ", " + f.Decline.NoRetryWhy
	}
	return d, nil
}

// rulesMessage is the message template of rule i in language lang ("": English): the
// decline class's own message when its plan has one (in the customer's language, else
// English), else the rule's.
func (p *Policy) rulesMessage(i int, lang string, f Facts) (*texttemplate.Template, string, error) {
	msgs := f.Decline.RulesMessages
	if len(msgs) == 0 {
		return p.ruleTemplates[i][lang], fmt.Sprintf("policy.yaml rules[%d].message", i), nil
	}
	l := "en"
	if t, err := language.Parse(f.Language); err == nil {
		if base, _ := t.Base(); msgs[base.String()] != "" {
			l = base.String()
		}
	}
	where := fmt.Sprintf("declines.yaml classes.%s.messages.%s", f.Decline.Class, l)
	t, err := texttemplate.New(where).Option("missingkey=error").Parse(msgs[l])
	if err != nil {
		return nil, where, fmt.Errorf("%s: %w", where, err)
	}
	return t, where, nil
}
