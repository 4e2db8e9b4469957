package replies

import (
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/recoup-dunning/recoup"
)

// phrase is one rules phrase: words matched whole, the last one as a prefix when it ended
// in "*"; "?" matches a question mark anywhere.
type phrase struct {
	words    []string
	prefix   bool
	question bool
}

func compilePhrase(p string) (phrase, error) {
	if strings.TrimSpace(p) == "?" {
		return phrase{question: true}, nil
	}
	prefix := strings.HasSuffix(strings.TrimSpace(p), "*")
	words := tokens(strings.TrimSuffix(strings.TrimSpace(p), "*"))
	if len(words) == 0 {
		return phrase{}, errEmptyPhrase
	}
	return phrase{words: words, prefix: prefix}, nil
}

// tokens splits folded, lower-case text into words (letters and digits; apostrophes are
// dropped, so "I'll" is "ill").
func tokens(s string) []string {
	s = strings.ToLower(fold(s))
	s = strings.NewReplacer("'", "", "’", "", "`", "").Replace(s)
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func (p phrase) matches(words []string, raw string) bool {
	if p.question {
		return strings.ContainsAny(raw, "?¿")
	}
	n := len(p.words)
	for i := 0; i+n <= len(words); i++ {
		ok := true
		for j, w := range p.words {
			last := j == n-1
			if words[i+j] != w && !(last && p.prefix && strings.HasPrefix(words[i+j], w)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Classification is the intent of a reply with its confidence and, for a promise, the
// promised date (YYYY-MM-DD; empty when none was understood).
type Classification struct {
	Intent     recoup.Intent `json:"intent"`
	Confidence float64       `json:"confidence"`
	PromisedOn string        `json:"promised_date"`
}

// priority orders the intents when a reply matches several: what must stop the run first.
var priority = []recoup.Intent{recoup.IntentWrongPerson, recoup.IntentDispute, recoup.IntentAlreadyPaid,
	recoup.IntentHardship, recoup.IntentPromiseToPay, recoup.IntentQuestion}

// Classify is the rules fallback: phrases of every language (a reply may mix them), in
// priority order. One intent matched: confidence 0.85; several: the first by priority at
// 0.55 (below the usual threshold: support looks at it), except that a promise with a date
// wins over a question; none: other at 0.3. A reply that looks like instructions to a model
// is other at 0.2. A promise without a date understood is 0.5. now is the reply's time in
// the customer's zone and locale the customer's BCP 47 locale, possibly empty (for dates:
// PromisedDate).
func (c *Config) Classify(text string, now time.Time, locale string) Classification {
	words := tokens(text)
	for _, p := range c.phrases[InjectionCategory] {
		if p.matches(words, text) {
			return Classification{Intent: recoup.IntentOther, Confidence: 0.2}
		}
	}
	var hits []recoup.Intent
	for _, in := range priority {
		for _, p := range c.phrases[string(in)] {
			if p.matches(words, text) {
				hits = append(hits, in)
				break
			}
		}
	}
	date, hasDate := PromisedDate(text, now, locale)
	if len(hits) == 0 {
		if hasDate { // "the 15th", "el viernes": a date alone is a promise
			return Classification{Intent: recoup.IntentPromiseToPay, Confidence: 0.6, PromisedOn: date}
		}
		return Classification{Intent: recoup.IntentOther, Confidence: 0.3}
	}
	hits = dropWeaker(hits, hasDate)
	cl := Classification{Intent: hits[0], Confidence: 0.85}
	if len(hits) > 1 {
		cl.Confidence = 0.55
	}
	if cl.Intent == recoup.IntentPromiseToPay {
		if !hasDate {
			cl.Confidence = 0.5
		}
		cl.PromisedOn = date
	}
	return cl
}

// dropWeaker removes the matches another one explains: hardship ("more time") next to a
// dated promise; an undated "pay" next to hardship ("can't pay") or a question ("how do I
// update my card?"); a question mark next to any other intent.
func dropWeaker(hits []recoup.Intent, hasDate bool) []recoup.Intent {
	if len(hits) < 2 {
		return hits
	}
	promise := containsIntent(hits, recoup.IntentPromiseToPay)
	out := hits[:0:0]
	for _, h := range hits {
		switch {
		case h == recoup.IntentHardship && hasDate && promise:
			continue
		case h == recoup.IntentPromiseToPay && !hasDate && (containsIntent(hits, recoup.IntentHardship) || containsIntent(hits, recoup.IntentQuestion)):
			continue
		}
		out = append(out, h)
	}
	if len(out) > 1 {
		out = slices.DeleteFunc(out, func(h recoup.Intent) bool { return h == recoup.IntentQuestion })
	}
	if len(out) == 0 {
		return hits
	}
	return out
}

func containsIntent(list []recoup.Intent, in recoup.Intent) bool {
	for _, v := range list {
		if v == in {
			return true
		}
	}
	return false
}
