package replies

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup"
)

// Config is prompts/replies.yaml: the threshold, the bounds, the mapping from intent to
// action and the rules fallback's phrases.
type Config struct {
	MinConfidence  float64                              `yaml:"min_confidence"`
	MaxPromiseDays int                                  `yaml:"max_promise_days"`
	VerifyWaitDays int                                  `yaml:"verify_wait_days"`
	Actions        map[recoup.Intent]recoup.ReplyAction `yaml:"actions"`
	Rules          map[string]map[string][]string       `yaml:"rules"` // category -> language -> phrases

	phrases map[string][]phrase // category -> phrases of every language
}

// InjectionCategory is the rules' category of replies that look like instructions to a
// model: they are classified IntentOther.
const InjectionCategory = "injection"

// allowed is what each intent may make the run do, whatever replies.yaml says: code, not
// configuration, decides that a dispute never pauses-and-continues and a promise never
// stops the run for good.
var allowed = map[recoup.Intent][]recoup.ReplyAction{
	recoup.IntentPromiseToPay: {recoup.ReplyPauseUntil, recoup.ReplyEscalate},
	recoup.IntentAlreadyPaid:  {recoup.ReplyVerifyPayment, recoup.ReplyEscalate},
	recoup.IntentDispute:      {recoup.ReplyStopEscalate},
	recoup.IntentWrongPerson:  {recoup.ReplyStopEscalate},
	recoup.IntentHardship:     {recoup.ReplyOfferExtend, recoup.ReplyEscalate},
	recoup.IntentQuestion:     {recoup.ReplyEscalate},
	recoup.IntentOther:        {recoup.ReplyEscalate},
}

// Problem is one thing wrong with replies.yaml, by line when known.
type Problem struct {
	Line    int
	Message string
}

// ParseError lists the problems of a replies.yaml.
type ParseError struct{ Problems []Problem }

func (e *ParseError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return strings.Join(msgs, "; ")
}

// Parse reads and checks replies.yaml.
func Parse(b []byte) (*Config, error) {
	var node yaml.Node
	if err := yaml.Unmarshal(b, &node); err != nil {
		return nil, &ParseError{Problems: []Problem{{Message: err.Error()}}}
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, &ParseError{Problems: []Problem{{Message: err.Error()}}}
	}
	line := func(key string) int { return keyLine(&node, key) }
	var ps []Problem
	if c.MinConfidence <= 0 || c.MinConfidence > 1 {
		ps = append(ps, Problem{line("min_confidence"), "min_confidence must be above 0 and at most 1"})
	}
	if c.MaxPromiseDays < 1 || c.MaxPromiseDays > 90 {
		ps = append(ps, Problem{line("max_promise_days"), "max_promise_days must be between 1 and 90"})
	}
	if c.VerifyWaitDays < 1 || c.VerifyWaitDays > 30 {
		ps = append(ps, Problem{line("verify_wait_days"), "verify_wait_days must be between 1 and 30"})
	}
	for _, in := range recoup.Intents {
		act, ok := c.Actions[in]
		switch {
		case !ok:
			ps = append(ps, Problem{line("actions"), fmt.Sprintf("actions: intent %s has no action", in)})
		case !slices.Contains(allowed[in], act):
			ps = append(ps, Problem{line("actions"), fmt.Sprintf("actions: %s may not %s (allowed: %v)", in, act, allowed[in])})
		}
	}
	for in := range c.Actions {
		if !in.Valid() {
			ps = append(ps, Problem{line("actions"), fmt.Sprintf("actions: unknown intent %q (intents: %v)", in, recoup.Intents)})
		}
	}
	ps = append(ps, c.compile(line("rules"))...)
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return nil, &ParseError{Problems: ps}
	}
	return &c, nil
}

// compile checks and prepares the rules' phrases.
func (c *Config) compile(line int) []Problem {
	var ps []Problem
	c.phrases = map[string][]phrase{}
	for cat, langs := range c.Rules {
		if cat != InjectionCategory && (!recoup.Intent(cat).Valid() || cat == string(recoup.IntentOther)) {
			ps = append(ps, Problem{line, fmt.Sprintf("rules: unknown category %q (an intent other than other, or injection)", cat)})
			continue
		}
		for lang, list := range langs {
			for _, p := range list {
				ph, err := compilePhrase(p)
				if err != nil {
					ps = append(ps, Problem{line, fmt.Sprintf("rules.%s.%s: %q: %v", cat, lang, p, err)})
					continue
				}
				c.phrases[cat] = append(c.phrases[cat], ph)
			}
		}
	}
	for _, in := range []recoup.Intent{recoup.IntentPromiseToPay, recoup.IntentAlreadyPaid, recoup.IntentDispute, recoup.IntentWrongPerson, recoup.IntentHardship} {
		if len(c.phrases[string(in)]) == 0 {
			ps = append(ps, Problem{line, fmt.Sprintf("rules: %s has no phrases", in)})
		}
	}
	return ps
}

// Action is what the mapping says an intent makes the run do (escalate for an unknown one).
func (c *Config) Action(in recoup.Intent) recoup.ReplyAction {
	if a, ok := c.Actions[in]; ok {
		return a
	}
	return recoup.ReplyEscalate
}

func keyLine(n *yaml.Node, key string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return 0
}

// errEmptyPhrase is a phrase with nothing to match.
var errEmptyPhrase = errors.New("empty phrase")
