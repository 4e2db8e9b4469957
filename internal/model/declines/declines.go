// Package declines is the decline taxonomy of prompts/declines.yaml: which recoup.DeclineClass
// a payment failure code belongs to (Stripe, Adyen, Braintree, card-network advice and
// ISO 8583 codes, each in its namespace), and each class's message plan. It is a pure model:
// no I/O, no clock, safe inside a workflow.
package declines

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup"
)

// File is the table's name in a prompt set.
const File = "declines.yaml"

// First messages: when a class's first message goes.
const (
	FirstAtOnce           = "at_once"            // at the schedule's first step (day 0)
	FirstAfterFailedRetry = "after_failed_retry" // nothing until a retry of the payment has failed
)

// Links: which link leads a class's message.
const (
	LinkPaymentMethod  = "payment_method" // update the payment method (PAYMENT_URL)
	LinkAuthentication = "authentication" // confirm the payment (PAYMENT_URL: billing's page authenticates)
)

// Plan is a class's message plan.
type Plan struct {
	// FirstMessage is FirstAtOnce or FirstAfterFailedRetry.
	FirstMessage string `yaml:"first_message"`
	// Link is LinkPaymentMethod or LinkAuthentication: what the message asks the customer to do.
	Link string `yaml:"link"`
	// PromiseRetry: the message may say the payment will be tried again. False for classes
	// whose payment will not be retried (guardrails.yaml retry_promises refuses such text).
	PromiseRetry bool `yaml:"promise_retry"`
	// Guidance is the line the model reads about this class (in the user prompt).
	Guidance string `yaml:"guidance"`
	// Messages are the rules' message per language ("en" required when any is given),
	// replacing the message of policy.yaml's rule for the step; {{.AmountDue}} available.
	// None: the step's own message.
	Messages map[string]string `yaml:"messages"`

	line int
}

// Table is a parsed declines.yaml. It is immutable.
type Table struct {
	// Version is the file's own `version:`, as the operators wrote it.
	Version string
	// Hash is the first 12 hex digits of the SHA-256 of the file (the loader's content hash).
	Hash string
	// DefaultNamespace is where a bare code (no "namespace:" prefix) is looked up.
	DefaultNamespace string

	codes map[string]map[string]recoup.DeclineClass // namespace → normalised code → class
	plans map[recoup.DeclineClass]Plan
}

// ParseError lists every problem of a table, each with its line (0: the file as a whole).
type ParseError struct{ Problems []Problem }

// Problem is one thing wrong with declines.yaml.
type Problem struct {
	Line    int
	Message string
}

func (e *ParseError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = fmt.Sprintf("%s:%d: %s", File, p.Line, p.Message)
	}
	return strings.Join(lines, "\n")
}

type file struct {
	Version          string               `yaml:"version"`
	DefaultNamespace string               `yaml:"default_namespace"`
	Classes          map[string]yaml.Node `yaml:"classes"`
	Codes            map[string]yaml.Node `yaml:"codes"`
}

// Parse reads declines.yaml. Every problem is reported with its line: an unknown class, a
// code listed twice in a namespace, a plan without a valid first_message or link, a class
// without a plan.
func Parse(data []byte) (*Table, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, &ParseError{Problems: []Problem{{Line: yamlLine(err.Error()), Message: err.Error()}}}
	}
	sum := sha256.Sum256(data)
	t := &Table{Version: strings.TrimSpace(f.Version), Hash: hex.EncodeToString(sum[:])[:12],
		DefaultNamespace: Normalize(f.DefaultNamespace),
		codes:            map[string]map[string]recoup.DeclineClass{}, plans: map[recoup.DeclineClass]Plan{}}
	var ps []Problem
	add := func(line int, format string, a ...any) { ps = append(ps, Problem{line, fmt.Sprintf(format, a...)}) }
	if t.Version == "" {
		add(0, "version: required (the table's version, recorded with every decision)")
	}
	ps = append(ps, t.parsePlans(f.Classes)...)
	ps = append(ps, t.parseCodes(f.Codes)...)
	if t.DefaultNamespace == "" {
		add(0, "default_namespace: required (where a bare code like expired_card is looked up)")
	} else if _, ok := t.codes[t.DefaultNamespace]; !ok {
		add(0, "default_namespace: %q is not a namespace of codes", f.DefaultNamespace)
	}
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return nil, &ParseError{Problems: ps}
	}
	return t, nil
}

// parsePlans reads classes: every class of recoup.DeclineClasses needs a plan, and no other.
func (t *Table) parsePlans(classes map[string]yaml.Node) []Problem {
	var ps []Problem
	add := func(line int, format string, a ...any) { ps = append(ps, Problem{line, fmt.Sprintf(format, a...)}) }
	for _, name := range sortedKeys(classes) {
		n := classes[name]
		c := recoup.DeclineClass(name)
		if !slices.Contains(recoup.DeclineClasses, c) {
			add(n.Line, "classes.%s: unknown class (one of %s)", name, classNames())
			continue
		}
		var p Plan
		if err := n.Decode(&p); err != nil {
			add(n.Line, "classes.%s: %v", name, err)
			continue
		}
		p.line = n.Line
		if p.FirstMessage != FirstAtOnce && p.FirstMessage != FirstAfterFailedRetry {
			add(n.Line, "classes.%s.first_message: %q is not %s or %s", name, p.FirstMessage, FirstAtOnce, FirstAfterFailedRetry)
		}
		if p.Link != LinkPaymentMethod && p.Link != LinkAuthentication {
			add(n.Line, "classes.%s.link: %q is not %s or %s", name, p.Link, LinkPaymentMethod, LinkAuthentication)
		}
		if strings.TrimSpace(p.Guidance) == "" || strings.Contains(strings.TrimSpace(p.Guidance), "\n") {
			add(n.Line, "classes.%s.guidance: one line for the model is required", name)
		}
		if _, ok := p.Messages["en"]; len(p.Messages) > 0 && !ok {
			add(n.Line, "classes.%s.messages: en is required when any language is given", name)
		}
		t.plans[c] = p
	}
	for _, c := range recoup.DeclineClasses {
		if _, ok := classes[string(c)]; !ok {
			add(0, "classes.%s: the class has no plan", c)
		}
	}
	return ps
}

// parseCodes reads codes: namespace → class → [codes]. A code appears once per namespace.
func (t *Table) parseCodes(codes map[string]yaml.Node) []Problem {
	var ps []Problem
	add := func(line int, format string, a ...any) { ps = append(ps, Problem{line, fmt.Sprintf(format, a...)}) }
	seen := map[string]int{} // namespace:code → line
	for _, ns := range sortedKeys(codes) {
		nns := Normalize(ns)
		if nns == "" || strings.Contains(nns, ":") {
			add(0, "codes.%s: a namespace is a name without ':'", ns)
			continue
		}
		if t.codes[nns] == nil {
			t.codes[nns] = map[string]recoup.DeclineClass{}
		}
		m := codes[ns]
		if m.Kind != yaml.MappingNode {
			add(m.Line, "codes.%s: a map of class to codes is required", ns)
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 { // in the file's order: a duplicate names its first line
			class, n := m.Content[i].Value, m.Content[i+1]
			c := recoup.DeclineClass(class)
			if !slices.Contains(recoup.DeclineClasses, c) {
				add(n.Line, "codes.%s.%s: unknown class (one of %s)", ns, class, classNames())
				continue
			}
			if n.Kind != yaml.SequenceNode {
				add(n.Line, "codes.%s.%s: a list of codes is required", ns, class)
				continue
			}
			for _, e := range n.Content {
				code := Normalize(e.Value)
				if e.Kind != yaml.ScalarNode || code == "" {
					add(e.Line, "codes.%s.%s: a code is a word or number", ns, class)
					continue
				}
				key := nns + ":" + code
				if first, dup := seen[key]; dup {
					add(e.Line, "codes.%s: %q is listed twice (first at line %d)", ns, e.Value, first)
					continue
				}
				seen[key] = e.Line
				t.codes[nns][code] = c
			}
		}
	}
	return ps
}

// Normalize is how codes and namespaces compare: trimmed, lower case, and every run of
// spaces, hyphens and underscores one "_" ("Expired Card" and "expired-card" are
// "expired_card").
func Normalize(s string) string {
	f := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(s)), func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '\t'
	})
	return strings.Join(f, "_")
}

// Classification is what Classify found for a failure code.
type Classification struct {
	Class     recoup.DeclineClass
	Namespace string // the namespace looked in (the default one for a bare code)
	Known     bool   // false: the code is not in the table (Class is unknown)
}

// Classify maps a failure code ("stripe:expired_card", "iso8583:54", or a bare code looked
// up in the default namespace) to its class; a code the table does not know, or an empty
// one, is DeclineUnknown.
func (t *Table) Classify(code string) Classification {
	if t == nil {
		return Classification{Class: recoup.DeclineUnknown, Namespace: "other"}
	}
	ns, c := t.DefaultNamespace, code
	if i := strings.Index(code, ":"); i >= 0 {
		ns, c = Normalize(code[:i]), code[i+1:]
	}
	c = Normalize(c)
	if class, ok := t.codes[ns][c]; ok && c != "" {
		return Classification{Class: class, Namespace: ns, Known: true}
	}
	if _, ok := t.codes[ns]; !ok {
		ns = "other" // bounded: a namespace the table does not have is counted as other
	}
	return Classification{Class: recoup.DeclineUnknown, Namespace: ns}
}

// Plan is the message plan of a class (DeclineUnknown's for a class the table lacks; with
// no table, a message at once, leading to the payment method, no retry promised).
func (t *Table) Plan(c recoup.DeclineClass) Plan {
	if t == nil {
		return Plan{FirstMessage: FirstAtOnce, Link: LinkPaymentMethod}
	}
	if p, ok := t.plans[c]; ok {
		return p
	}
	return t.plans[recoup.DeclineUnknown]
}

// Namespaces lists the table's namespaces.
func (t *Table) Namespaces() []string { return sortedKeys(t.codes) }

// Codes lists a namespace's codes (normalised), sorted.
func (t *Table) Codes(namespace string) []string { return sortedKeys(t.codes[Normalize(namespace)]) }

// Messages lists, per class, the rules' messages (for lint), by class then language.
func (t *Table) Messages() map[recoup.DeclineClass]map[string]string {
	out := map[recoup.DeclineClass]map[string]string{}
	for c, p := range t.plans {
		if len(p.Messages) > 0 {
			out[c] = p.Messages
		}
	}
	return out
}

// Line is the line of a class's plan in the file (for lint messages).
func (t *Table) Line(c recoup.DeclineClass) int { return t.plans[c].line }

// RulesMessage is the rules' message template of a class in a language (its base, then
// English); ok is false when the class has none.
func (p Plan) RulesMessage(lang string) (string, bool) {
	if m, ok := p.Messages[lang]; ok {
		return m, true
	}
	m, ok := p.Messages["en"]
	return m, ok
}

func classNames() string {
	names := make([]string, len(recoup.DeclineClasses))
	for i, c := range recoup.DeclineClasses {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// yamlLine finds "line N" in a YAML error message.
func yamlLine(msg string) int {
	var n int
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i+5:], "%d", &n)
	}
	return n
}
