package templates

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template/parse"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/declines"
	"github.com/recoup-dunning/recoup/internal/model/segments"
)

// Problem is one thing wrong with a prompt set, at a file and line (0 when it is the file
// as a whole).
type Problem struct {
	File    string
	Line    int
	Message string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Message)
}

// LintError is a prompt set refused for its problems.
type LintError struct{ Problems []Problem }

func (e *LintError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "prompt set refused:\n" + strings.Join(lines, "\n")
}

// Lint checks a prompt set without loading it: every problem, as file:line: message.
func Lint(dir string) []Problem {
	_, err := Load(dir)
	var le *LintError
	if errors.As(err, &le) {
		return le.Problems
	}
	if err != nil {
		return []Problem{{File: dir, Message: err.Error()}}
	}
	return nil
}

// MaxSMSSegments is how many SMS segments a rendered message may take.
const MaxSMSSegments = 2

var (
	lineRe = regexp.MustCompile(`line (\d+)`)
	posRe  = regexp.MustCompile(`template: ([^:]+):(\d+):(?:\d+:)?\s*(.*)`)
	varsRe = regexp.MustCompile(`^\{\{-?\s*/\*\s*vars:([^*]*)\*/`)
)

func policyProblems(err error) []Problem { return fileProblems(PolicyFile, err) }

// fileProblems splits a parse error of a YAML file into problems, with the line when the
// message names one.
func fileProblems(file string, err error) []Problem {
	var out []Problem
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), file+": ")
		if line == "" {
			continue
		}
		p := Problem{File: file, Message: line}
		if m := lineRe.FindStringSubmatch(line); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
		}
		out = append(out, p)
	}
	return out
}

func templateProblem(file string, err error) Problem {
	if m := posRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[2])
		return Problem{File: file, Line: n, Message: m[3]}
	}
	return Problem{File: file, Message: err.Error()}
}

// fieldsOf lists the template variables a data type offers.
func fieldsOf(v any) []string {
	t := reflect.TypeOf(v)
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = t.Field(i).Name
	}
	return out
}

var (
	promptVars  = fieldsOf(PromptData{})
	messageVars = fieldsOf(MessageData{})
	replyVars   = fieldsOf(ReplyData{})
)

// lint checks the variables each template declares and uses, renders every template for
// every locale, tone, incentive and fixture, and checks the mandatory parts, SMS length in
// segments and the prompt's token budget.
func (s *Set) lint() []Problem {
	var ps []Problem
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !strings.HasSuffix(n, ".tmpl") {
			continue
		}
		allowed := messageVars
		switch {
		case n == ReplyFile:
			allowed = replyVars
		case path.Base(n) == SystemFile || path.Base(n) == UserFile:
			allowed = promptVars
		}
		ps = append(ps, checkVars(n, string(s.files[n]), allowed)...)
	}
	pol := s.Policy
	for _, loc := range s.Locales() {
		m := s.messages[loc]
		dir := path.Join(MessagesDir, loc)
		worst := strings.Repeat("a", pol.SMSMaxChars) // the longest message the policy lets through
		for _, tone := range pol.Tones {
			for _, inc := range fixtureIncentives {
				for _, nl := range lintNamesAndLinks {
					name := nl[0]
					d := MessageData{FirstName: name, Subject: "Your payment", Message: "Your payment did not go through.",
						Tone: tone, Incentive: inc, AmountDue: "$49.00", PaymentURL: "https://pay.example/l/inv_1234567890",
						UnsubscribeURL: "https://pay.example/u/cus_1234567890", Language: loc, Link: nl[1]}
					ps = append(ps, s.checkMessages(dir, m, d, worst)...)
				}
			}
		}
		for i := range pol.Rules { // the fixed messages of the rules may go out by SMS too
			d, err := pol.RulesDecision(ruleFacts(i))
			if err != nil {
				continue // policy.Parse already reported it
			}
			sms, err := s.SMS(MessageData{Message: d.Message, Incentive: Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 20, Expires: "December 13"},
				PaymentURL: "https://pay.example/l/inv_1234567890", Language: loc})
			if err == nil {
				if c := segments.Of(sms); c.Segments > MaxSMSSegments {
					ps = append(ps, Problem{File: PolicyFile, Message: fmt.Sprintf("rules[%d].message: the %s SMS takes %d segments (%s), more than %d", i, loc, c.Segments, c.Encoding, MaxSMSSegments)})
				}
			}
		}
	}
	ps = append(ps, s.lintGuardrails()...)
	ps = append(ps, s.lintDeclines()...)
	for _, v := range s.Variants() {
		for _, lang := range []string{"en-US", "es-ES", "de-DE"} {
			d := s.WithDecline(fixturePrompt(pol, lang), s.longestGuidance())
			d.RetryAdvice = fixtureRetryAdvice
			sys, usr, err := s.Prompt(v, d)
			if err != nil {
				ps = append(ps, templateProblem(variantFile(v), err))
				continue
			}
			if tokens := EstimateTokens(sys + usr); tokens > pol.TokenBudget {
				ps = append(ps, Problem{File: variantFile(v), Message: fmt.Sprintf("the prompt is about %d tokens, over the budget of %d (prompt_token_budget)", tokens, pol.TokenBudget)})
			}
		}
	}
	return dedupe(ps)
}

// lintGuardrails: every language with message templates has its lists in guardrails.yaml,
// and the rules' fixed texts pass the guardrails as if they offered nothing (the template
// states the offer, and the yearly budget may withdraw it).
func (s *Set) lintGuardrails() []Problem {
	pol := s.Policy
	var ps []Problem
	var langs []string
	for _, loc := range s.Locales() {
		if t, err := language.Parse(loc); err == nil {
			b, _ := t.Base()
			if !slices.Contains(langs, b.String()) {
				langs = append(langs, b.String())
			}
		}
	}
	for _, m := range pol.Guardrails.MissingLanguages(langs) {
		ps = append(ps, Problem{File: GuardrailsFile, Message: fmt.Sprintf("%s: missing; every language with message templates needs a list in every section", m)})
	}
	none := recoup.Incentive{Kind: recoup.IncentiveNone}
	for i, r := range pol.Rules {
		langs := []string{""}
		for l := range r.Translations {
			langs = append(langs, l)
		}
		sort.Strings(langs)
		for _, l := range langs {
			f := ruleFacts(i)
			f.Language = l
			d, err := pol.RulesDecision(f)
			if err != nil {
				continue // policy.Parse already reported it
			}
			field := fmt.Sprintf("rules[%d]", i)
			if l != "" {
				field = fmt.Sprintf("rules[%d].translations.%s", i, l)
			}
			v := append(pol.CheckText(field+".subject", d.Subject, none, f.AmountDue), pol.CheckText(field+".message", d.Message, none, f.AmountDue)...)
			for _, x := range v {
				ps = append(ps, Problem{File: PolicyFile, Message: x + " (the rules' texts must pass guardrails.yaml as if they offered nothing: the template states the offer)"})
			}
		}
	}
	return ps
}

// lintDeclines: for every decline class, the rules' message of every step in every
// language — the class's own (declines.yaml) or the step's (policy.yaml) — passes the
// guardrails as if it offered nothing and keeps the class's plan (no retry promised: the
// advice may say none will happen; no card details where only authentication is needed),
// and a class's own message fits the SMS.
func (s *Set) lintDeclines() []Problem {
	if s.Declines == nil || s.Policy == nil {
		return nil
	}
	pol, none := s.Policy, recoup.Incentive{Kind: recoup.IncentiveNone}
	var ps []Problem
	for _, c := range recoup.DeclineClasses {
		df := s.DeclineFacts(c, 2, 2) // as after a failed retry: the plan's message is sent
		// The rules decide whatever the retry advice: no rules message may promise a retry,
		// since the advice may say none comes (DeclineFacts.WithAdvice).
		df.NoRetryPromise = true
		langs := []string{""}
		for l := range df.RulesMessages {
			langs = append(langs, l)
		}
		for i, r := range pol.Rules {
			if len(df.RulesMessages) == 0 {
				langs = []string{""}
				for l := range r.Translations {
					langs = append(langs, l)
				}
			}
			sort.Strings(langs)
			for _, l := range langs {
				f := ruleFacts(i)
				f.Language, f.Decline = l, df
				d, err := pol.RulesDecision(f)
				file, line, field := PolicyFile, 0, fmt.Sprintf("rules[%d].message", i)
				if len(df.RulesMessages) > 0 {
					file, line, field = DeclinesFile, s.Declines.Line(c), fmt.Sprintf("classes.%s.messages.%s", c, cmp.Or(l, "en"))
				} else if l != "" {
					field = fmt.Sprintf("rules[%d].translations.%s.message", i, l)
				}
				if err != nil {
					ps = append(ps, Problem{File: file, Line: line, Message: err.Error()})
					continue
				}
				v := append(pol.CheckText(field, d.Message, none, f.AmountDue), pol.CheckDeclineText(field, d.Message, df)...)
				for _, x := range v {
					ps = append(ps, Problem{File: file, Line: line, Message: x + " (with decline class " + string(c) + ")"})
				}
				if len(df.RulesMessages) > 0 {
					ps = append(ps, s.declineSMSFits(file, line, field, d.Message, l)...)
				}
			}
		}
	}
	return dedupe(ps)
}

// declineSMSFits: a class's own rules message fits MaxSMSSegments in its locale's SMS.
func (s *Set) declineSMSFits(file string, line int, field, msg, lang string) []Problem {
	sms, err := s.SMS(MessageData{Message: msg, Incentive: Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 20, Expires: "December 13"},
		PaymentURL: "https://pay.example/l/inv_1234567890", Language: cmp.Or(lang, DefaultLocale)})
	if err != nil {
		return nil // the SMS template's own problem is reported with it
	}
	if c := segments.Of(sms); c.Segments > MaxSMSSegments {
		return []Problem{{File: file, Line: line, Message: fmt.Sprintf("%s: the SMS takes %d segments (%s), more than %d", field, c.Segments, c.Encoding, MaxSMSSegments)}}
	}
	return nil
}

// longestGuidance is the decline class whose guidance is longest (for the token budget).
func (s *Set) longestGuidance() recoup.DeclineClass {
	best := recoup.DeclineUnknown
	if s.Declines == nil {
		return best
	}
	for _, c := range recoup.DeclineClasses {
		if len(s.Declines.Plan(c).Guidance) > len(s.Declines.Plan(best).Guidance) {
			best = c
		}
	}
	return best
}

func variantFile(v string) string {
	if v == "" {
		return SystemFile
	}
	return path.Join(VariantsDir, v)
}

// lintNamesAndLinks: every message is rendered with and without a first name, for each
// link's wording.
var lintNamesAndLinks = [][2]string{{"Ada", declines.LinkPaymentMethod}, {"", declines.LinkPaymentMethod},
	{"Ada", declines.LinkAuthentication}, {"", declines.LinkAuthentication}}

var fixtureIncentives = []Incentive{{}, {Kind: recoup.IncentiveDiscountPercent, Value: 20, Expires: "December 13"},
	{Kind: recoup.IncentiveExtensionDays, Value: 30}}

func (s *Set) checkMessages(dir string, m *messageTemplates, d MessageData, worst string) []Problem {
	var ps []Problem
	var b strings.Builder
	text := path.Join(dir, EmailText)
	if err := m.emailText.Execute(&b, d); err != nil {
		ps = append(ps, templateProblem(text, err))
	} else {
		ps = append(ps, mustContain(text, b.String(), d)...)
	}
	b.Reset()
	html := path.Join(dir, EmailHTML)
	if err := m.emailHTML.Execute(&b, d); err != nil {
		ps = append(ps, templateProblem(html, err))
	} else {
		ps = append(ps, mustContain(html, b.String(), d)...)
	}
	b.Reset()
	smsFile := path.Join(dir, SMSFile)
	long := d
	long.Message = worst
	for _, md := range []MessageData{d, long} {
		b.Reset()
		if err := m.sms.Execute(&b, md); err != nil {
			ps = append(ps, templateProblem(smsFile, err))
			break
		}
		sms := strings.Join(strings.Fields(b.String()), " ")
		if !strings.Contains(sms, d.PaymentURL) {
			ps = append(ps, Problem{File: smsFile, Message: "must include the payment link {{.PaymentURL}}"})
		}
		if !strings.Contains(sms, "STOP") {
			ps = append(ps, Problem{File: smsFile, Message: `must tell the customer how to opt out with the word STOP (e.g. "Reply STOP to opt out")`})
		}
		if c := segments.Of(sms); c.Segments > MaxSMSSegments {
			ps = append(ps, Problem{File: smsFile, Message: fmt.Sprintf("with a %d-character message (sms_max_chars) the SMS takes %d %s segments, more than %d; shorten the template or lower sms_max_chars",
				utf8.RuneCountInString(md.Message), c.Segments, c.Encoding, MaxSMSSegments)})
		}
	}
	return ps
}

func mustContain(file, body string, d MessageData) []Problem {
	var ps []Problem
	if !strings.Contains(body, d.PaymentURL) {
		ps = append(ps, Problem{File: file, Message: "must include the payment link {{.PaymentURL}} (also when there is no first name or incentive)"})
	}
	if !strings.Contains(body, d.UnsubscribeURL) {
		ps = append(ps, Problem{File: file, Message: "must include the unsubscribe link {{.UnsubscribeURL}} (also when there is no first name or incentive)"})
	}
	return ps
}

// checkVars: every template starts with {{/* vars: .A .B */}} naming the variables it uses;
// each must exist, and the template may use no other.
func checkVars(file, src string, allowed []string) []Problem {
	m := varsRe.FindStringSubmatch(strings.TrimLeft(src, " \t\r\n"))
	if m == nil {
		return []Problem{{File: file, Line: 1, Message: "must start with {{/* vars: .Name … */}} listing the variables it uses"}}
	}
	var ps []Problem
	declared := map[string]bool{}
	for _, f := range strings.Fields(m[1]) {
		name := strings.TrimPrefix(f, ".")
		if !slices.Contains(allowed, name) {
			ps = append(ps, Problem{File: file, Line: 1, Message: fmt.Sprintf("declares unknown variable .%s (available: .%s)", name, strings.Join(allowed, " ."))})
		}
		declared[name] = true
	}
	trees, err := parse.Parse(file, src, "{{", "}}", funcs, map[string]any{"eq": true, "ne": true, "and": true, "or": true, "not": true, "len": true, "index": true, "printf": true, "html": true, "urlquery": true, "js": true, "print": true, "println": true, "lt": true, "le": true, "gt": true, "ge": true, "call": true, "slice": true})
	if err != nil {
		return ps // the parse error is reported by the loader
	}
	seen := map[string]bool{}
	for _, tr := range trees {
		walk(tr.Root, func(n *parse.FieldNode) {
			name := n.Ident[0]
			if !declared[name] && !seen[name] {
				seen[name] = true
				loc, _ := tr.ErrorContext(n)
				line := 0
				if parts := strings.Split(loc, ":"); len(parts) > 1 {
					line, _ = strconv.Atoi(parts[1])
				}
				ps = append(ps, Problem{File: file, Line: line, Message: fmt.Sprintf("uses .%s, which is not in its vars: list", name)})
			}
		})
	}
	return ps
}

func walk(n parse.Node, f func(*parse.FieldNode)) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			walk(c, f)
		}
	case *parse.ActionNode:
		walk(x.Pipe, f)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			walk(c, f)
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			walk(a, f)
		}
	case *parse.FieldNode:
		f(x)
	case *parse.ChainNode:
		walk(x.Node, f)
	case *parse.IfNode:
		walk(x.Pipe, f)
		walk(x.List, f)
		walk(x.ElseList, f)
	case *parse.RangeNode:
		walk(x.Pipe, f)
		walk(x.List, f)
		walk(x.ElseList, f)
	case *parse.WithNode:
		walk(x.Pipe, f)
		walk(x.List, f)
		walk(x.ElseList, f)
	case *parse.TemplateNode:
		walk(x.Pipe, f)
	}
}

// EstimateTokens estimates a text's size in model tokens (about 4 characters each).
func EstimateTokens(s string) int { return (utf8.RuneCountInString(s) + 3) / 4 }

func dedupe(ps []Problem) []Problem {
	seen := map[string]bool{}
	out := ps[:0]
	for _, p := range ps {
		if k := p.String(); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}
