package policy

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup"
)

// Guardrails are the word lists of guardrails.yaml that the model's free text (subject
// and message) is checked against, per language. Every language's lists apply to every
// text, whatever the customer's language.
type Guardrails struct {
	Discount    Terms `yaml:"discount"`     // allowed only with a discount_percent incentive
	Extension   Terms `yaml:"extension"`    // allowed only with an extension_days incentive
	Promises    Terms `yaml:"promises"`     // never: waivers, refunds, credits, changed balances
	Threats     Terms `yaml:"threats"`      // never: collections, legal steps, ending the service
	Currencies  Terms `yaml:"currencies"`   // never: the template shows the amount due
	NumberWords Terms `yaml:"number_words"` // never: the template shows the figures
	// RetryPromises: never when the decline class's plan may not promise a retry.
	RetryPromises Terms `yaml:"retry_promises"`
	// CardDetails: never when the decline class's plan leads with the authentication link.
	CardDetails Terms `yaml:"card_details"`

	matchers map[string]*matcher // by category
}

// Terms are the entries of one category by language code ("en", "es").
type Terms map[string][]Term

// Term is one entry: a word or phrase; "*" at either end matches any letters there.
type Term struct {
	Text string
	Line int
}

// UnmarshalYAML keeps the entry's line for error messages.
func (t *Term) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: an entry must be a word or phrase", n.Line)
	}
	t.Text, t.Line = n.Value, n.Line
	return nil
}

// GuardrailCategories names the categories in the order guardrails.yaml lists them.
var GuardrailCategories = []string{"discount", "extension", "promises", "threats", "currencies", "number_words", "retry_promises", "card_details"}

func (g *Guardrails) category(name string) Terms {
	switch name {
	case "discount":
		return g.Discount
	case "extension":
		return g.Extension
	case "promises":
		return g.Promises
	case "threats":
		return g.Threats
	case "currencies":
		return g.Currencies
	case "number_words":
		return g.NumberWords
	case "retry_promises":
		return g.RetryPromises
	case "card_details":
		return g.CardDetails
	}
	return nil
}

// ParseGuardrails reads and validates guardrails.yaml. Errors name the entry and its line.
func ParseGuardrails(data []byte) (*Guardrails, error) {
	var g Guardrails
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("guardrails.yaml: %w", err)
	}
	var errs []error
	g.matchers = map[string]*matcher{}
	for _, cat := range GuardrailCategories {
		terms := g.category(cat)
		if len(terms) == 0 {
			errs = append(errs, fmt.Errorf("guardrails.yaml: %s: at least one language is required", cat))
			continue
		}
		m := &matcher{byFirst: map[string][]term{}, byPrefix: map[string][]term{}}
		g.matchers[cat] = m
		for _, lang := range sortedKeys(terms) {
			if _, err := language.ParseBase(lang); err != nil || strings.Contains(lang, "-") {
				errs = append(errs, fmt.Errorf("guardrails.yaml: %s.%s: not a language code like es or de", cat, lang))
				continue
			}
			if len(terms[lang]) == 0 {
				errs = append(errs, fmt.Errorf("guardrails.yaml: %s.%s: the list is empty", cat, lang))
			}
			for _, t := range terms[lang] {
				pt, err := parseTerm(t.Text)
				if err != nil {
					errs = append(errs, fmt.Errorf("guardrails.yaml: line %d: %s.%s: %q %v", t.Line, cat, lang, t.Text, err))
					continue
				}
				m.add(pt)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &g, nil
}

// MissingLanguages lists, per category, the given languages that have no list.
func (g *Guardrails) MissingLanguages(langs []string) []string {
	var out []string
	for _, cat := range GuardrailCategories {
		for _, l := range langs {
			if _, ok := g.category(cat)[l]; !ok {
				out = append(out, cat+"."+l)
			}
		}
	}
	return out
}

// term is a parsed entry: its words (normalized), and whether the first word may have any
// letters before it (pre) and the last any letters after it (suf).
type term struct {
	words    []string
	pre, suf bool
}

func parseTerm(s string) (term, error) {
	core := strings.TrimSpace(s)
	t := term{pre: strings.HasPrefix(core, "*"), suf: strings.HasSuffix(core, "*")}
	core = strings.Trim(core, "*")
	if strings.Contains(core, "*") {
		return t, errors.New(`has "*" inside; it may only stand at the start or the end`)
	}
	t.words = words(Normalize(core))
	if len([]rune(strings.Join(t.words, ""))) < 2 {
		return t, errors.New("needs at least two letters")
	}
	if strings.Join(t.words, " ") != Normalize(core) {
		return t, errors.New("may hold only letters, digits and spaces (and * at an end)")
	}
	return t, nil
}

// words splits normalized text into its words: runs of letters and digits.
func words(n string) []string {
	return strings.FieldsFunc(n, func(r rune) bool { return !isWordRune(r) })
}

// matcher finds the entries of one category in a text's words.
type matcher struct {
	byFirst  map[string][]term // entries whose first word must match exactly
	byPrefix map[string][]term // one-word entries "abc*", by their first two letters
	loose    []term            // entries starting "*"
}

func (m *matcher) add(t term) {
	switch {
	case t.pre:
		m.loose = append(m.loose, t)
	case len(t.words) == 1 && t.suf:
		k := prefix2(t.words[0])
		m.byPrefix[k] = append(m.byPrefix[k], t)
	default:
		m.byFirst[t.words[0]] = append(m.byFirst[t.words[0]], t)
	}
}

func prefix2(w string) string {
	r := []rune(w)
	return string(r[:min(2, len(r))])
}

// find returns the words of the first entry found in ws, or "".
func (m *matcher) find(ws []string) string {
	for i, w := range ws {
		for _, set := range [][]term{m.byFirst[w], m.byPrefix[prefix2(w)], m.loose} {
			for _, t := range set {
				if t.matchAt(ws, i) {
					return strings.Join(ws[i:i+len(t.words)], " ")
				}
			}
		}
	}
	return ""
}

func (t term) matchAt(ws []string, i int) bool {
	if i+len(t.words) > len(ws) {
		return false
	}
	last := len(t.words) - 1
	for j, tw := range t.words {
		w := ws[i+j]
		pre, suf := j == 0 && t.pre, j == last && t.suf
		var ok bool
		switch {
		case pre && suf:
			ok = strings.Contains(w, tw)
		case pre:
			ok = strings.HasSuffix(w, tw)
		case suf:
			ok = strings.HasPrefix(w, tw)
		default:
			ok = w == tw
		}
		if !ok {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Normalize is the form text is checked in: invalid UTF-8, control, zero-width and bidi
// characters removed, Unicode NFKC (full-width and styled letters and digits become plain
// ones), case folded, accents removed, full-width and ideographic full stops made dots,
// and whitespace collapsed to single spaces.
func Normalize(s string) string {
	s = norm.NFKC.String(Sanitize(s))
	s = cases.Fold().String(s)
	s = stripMarks(s)
	s = dotLike.Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// stripMarks removes accents and other combining marks ("prórroga" → "prorroga").
func stripMarks(s string) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < utf8.RuneSelf
	}
	if ascii {
		return s
	}
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, norm.NFD.String(s))
	return norm.NFKC.String(s)
}

var dotLike = strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".", "\u2024", ".", "\ufe52", ".")

var (
	// "[.]", "(dot)", "{punkt}", " dot " and "[at]", "(@)" as used to hide links and addresses
	obfuscatedDot = regexp.MustCompile(`[\[({<]\s*(?:\.|dot|punto|punkt|point)\s*[\])}>]|(\pL)\s+dot\s+(\pL)`)
	obfuscatedAt  = regexp.MustCompile(`[\[({<]\s*(?:at|@|arroba)\s*[\])}>]`)
	emailRe       = regexp.MustCompile(`\S*@\S*`)
	schemeRe      = regexp.MustCompile(`\pL[\pL\pN+.\-]*:/+\S*`)
	linkWordRe    = regexp.MustCompile(`(?:^|[^\pL\pN])((?:www\d*|https?|hxxps?|h\*\*ps?|ftp)(?:[^\pL\pN]\S*)?)(?:\s|$)|(\S*xn--\S*)`)
	// label.label…tld (tld: two letters or more), or label . tld with spaces around the dot
	domainRe = regexp.MustCompile(`(?:^|[^\pL\pN\-_])((?:[\pL\pN_](?:[\pL\pN_\-]*[\pL\pN_])?(?:\.|\s+\.\s*))+\pL{2,}(?:/\S*)?)(?:[^\pL\pN\-_]|$)`)
	phoneRe  = regexp.MustCompile(`\+?\pN(?:[\s().\-/]{0,3}\pN){6,}`)
	numberRe = regexp.MustCompile(`\pN+(?:[.,]\pN+)*`)
	// four or more single letters in a row: "d i s c o u n t", "c.o.u.r.t"
	letterSpaced = regexp.MustCompile(`(?:^|[^\pL\pN])\pL(?:[\s.\-_*·/|+]+\pL){3,}(?:[^\pL\pN]|$)`)
)

// ContactLike says whether text holds (after Normalize) a link or domain name, an email
// address or a phone number: "a link", "an email address", "a phone number", or "".
func ContactLike(s string) string {
	n := deobfuscate(Normalize(s))
	switch {
	case emailRe.MatchString(n):
		return "an email address"
	case findLink(n) != "":
		return "a link"
	case phoneRe.MatchString(n):
		return "a phone number"
	}
	return ""
}

func deobfuscate(n string) string {
	n = obfuscatedDot.ReplaceAllStringFunc(n, func(m string) string {
		if sm := obfuscatedDot.FindStringSubmatch(m); sm[1] != "" {
			return sm[1] + "." + sm[2]
		}
		return "."
	})
	return obfuscatedAt.ReplaceAllString(n, "@")
}

// findLink returns the first link, link word ("www", "hxxp") or domain-like token in
// normalized text.
func findLink(n string) string {
	if m := schemeRe.FindString(n); m != "" {
		return m
	}
	if sm := linkWordRe.FindStringSubmatch(n); sm != nil {
		return sm[1] + sm[2]
	}
	if sm := domainRe.FindStringSubmatch(n); sm != nil {
		return sm[1]
	}
	return ""
}

// joinWords removes punctuation inside words ("dis-count", "col.lec.tions" → "discount",
// "collections").
func joinWords(n string) string {
	r := []rune(n)
	out := make([]rune, 0, len(r))
	for i, c := range r {
		if strings.ContainsRune("-_.·'’*|/", c) && i > 0 && i+1 < len(r) && unicode.IsLetter(r[i-1]) && unicode.IsLetter(r[i+1]) {
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

// CheckText checks free text the customer reads (a decision's subject and message) against
// the guardrails: no links, addresses or phone numbers; no currency, amounts or numbers other
// than the amount due (as formatted for the customer) and the incentive's own value; no
// percentage without a discount; no words of a discount or an extension unless that is the
// incentive; no promises, threats, currency names or numbers in words; no letter-spaced
// words and no words mixing alphabets. It returns the violations, each naming the field.
func (p *Policy) CheckText(field, text string, inc recoup.Incentive, amountDue string) []string {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	g := p.Guardrails
	if g == nil {
		return []string{field + ": no guardrails loaded (guardrails.yaml); the text cannot be checked"}
	}
	var v []string
	add := func(format string, a ...any) { v = append(v, field+" "+fmt.Sprintf(format, a...)) }
	n := Normalize(text)
	if amt := Normalize(amountDue); amt != "" && strings.ContainsFunc(amt, unicode.IsDigit) {
		// the amount due as the customer sees it (also without its inner space: "$99.00")
		n = strings.ReplaceAll(n, amt, cut)
		n = strings.ReplaceAll(n, strings.ReplaceAll(amt, " ", ""), cut)
	}
	n = deobfuscate(n)
	// Contact data first; each finding is cut out so that it is reported once.
	if emailRe.MatchString(n) {
		add("contains an email address")
		n = emailRe.ReplaceAllString(n, cut)
	}
	for i := 0; i < 8; i++ {
		l := findLink(n)
		if l == "" {
			break
		}
		if i == 0 {
			add("contains a link (%q); the templates add the only links", l)
		}
		n = strings.Replace(n, l, cut, 1)
	}
	if phoneRe.MatchString(n) {
		add("contains a phone number")
		n = phoneRe.ReplaceAllString(n, cut)
	}
	// Figures: the template shows the amount due and the incentive.
	if i := strings.IndexFunc(n, func(r rune) bool { return unicode.Is(unicode.Sc, r) }); i >= 0 {
		add("states an amount of money (%q); only the amount due may appear, and the template shows it", excerpt(n, i))
	}
	if i := strings.IndexAny(n, "%\u066a\u2030\u2031"); i >= 0 && inc.Kind != recoup.IncentiveDiscountPercent {
		add("mentions a percentage (%q) but the decision offers no discount", excerpt(n, i))
	}
	for _, num := range numberRe.FindAllString(n, -1) {
		switch {
		case strings.ContainsAny(num, ".,"):
			add("states an amount or figure (%q) other than the amount due", num)
		case strings.ContainsFunc(num, func(r rune) bool { return r > unicode.MaxASCII }):
			add("contains digits of another script (%q)", num)
		default:
			if val, err := strconv.Atoi(num); err != nil || inc.Kind == recoup.IncentiveNone || inc.Kind == "" || val != inc.Value {
				add("contains the number %s; only the incentive's own value may appear (the template shows amounts and dates)", num)
			}
		}
	}
	// Words, in the text as written and with punctuation inside words removed.
	plain, joined := words(n), words(joinWords(n))
	match := func(cat string) string {
		m := g.matchers[cat]
		if m == nil {
			return ""
		}
		if f := m.find(plain); f != "" {
			return f
		}
		return m.find(joined)
	}
	if m := match("discount"); m != "" && inc.Kind != recoup.IncentiveDiscountPercent {
		add("mentions a discount (%q) but the decision's incentive is %s", m, incentiveName(inc))
	}
	if m := match("extension"); m != "" && inc.Kind != recoup.IncentiveExtensionDays {
		add("mentions more time to pay (%q) but the decision's incentive is %s", m, incentiveName(inc))
	}
	if m := match("promises"); m != "" {
		add("promises what the policy does not offer (%q)", m)
	}
	if m := match("threats"); m != "" {
		add("threatens the customer (%q)", m)
	}
	if m := match("currencies"); m != "" {
		add("names a currency (%q); only the amount due may appear, and the template shows it", m)
	}
	if m := match("number_words"); m != "" {
		add("writes a number in words (%q); the template shows the figures", m)
	}
	if m := letterSpaced.FindString(n); m != "" {
		add("spells out a word letter by letter (%q)", strings.TrimFunc(m, func(r rune) bool { return !unicode.IsLetter(r) }))
	}
	if MixesAlphabets(n) {
		add("mixes alphabets in one word")
	}
	return v
}

// cut stands for a part already dealt with (U+FFFC: not a letter, digit, space or sign).
const cut = "\ufffc"

func incentiveName(inc recoup.Incentive) string {
	if inc.Kind == "" || inc.Kind == recoup.IncentiveNone {
		return recoup.IncentiveNone
	}
	return fmt.Sprintf("%s %d", inc.Kind, inc.Value)
}

func excerpt(s string, i int) string {
	r := []rune(s[i:])
	return string(r[:min(len(r), 12)])
}

var alphabets = []*unicode.RangeTable{unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Armenian, unicode.Cherokee, unicode.Coptic}

// MixesAlphabets says whether a word of s has letters of two alphabets (Latin, Greek,
// Cyrillic …): "pаypal" with a Cyrillic "а" is a look-alike, never a real word.
func MixesAlphabets(s string) bool {
	seen := -1
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.Is(unicode.Mn, r) {
			seen = -1 // a new word
			continue
		}
		for i, t := range alphabets {
			if unicode.Is(t, r) {
				if seen >= 0 && seen != i {
					return true
				}
				seen = i
			}
		}
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// DeclineFacts are what the decline class's plan (declines.yaml) lets the text say and do.
type DeclineFacts struct {
	Class recoup.DeclineClass
	// NoRetryPromise: the plan may not say the payment will be tried again (retry_promises).
	NoRetryPromise bool
	// NoCardDetails: the plan leads with the authentication link; the text may not ask for
	// card details (card_details).
	NoCardDetails bool
	// Wait: the plan sends nothing yet (issuer unavailable, step 1, and no retry has failed).
	Wait bool
	// RulesMessages are the class's own rules messages by language (nil: the step's).
	RulesMessages map[string]string
	// NoRetryWhy: the plan allows a retry promise but the run's retry advice does not (set
	// by WithAdvice), e.g. "advice: no retry (visa budget spent …)"; "" otherwise.
	NoRetryWhy string
}

// WithAdvice narrows the plan by the run's newest retry advice (State.Retry.Advice): the
// text may promise a retry only when the plan allows it and the advice says billing retries
// after now. No advice, an advice that failed, DoNotRetry or a RetryAt already past promise
// none.
func (d DeclineFacts) WithAdvice(adv *recoup.RetryAdvice, now time.Time) DeclineFacts {
	if d.NoRetryPromise || RetryAhead(adv, now) {
		return d
	}
	d.NoRetryPromise = true
	switch {
	case adv == nil || (!adv.DoNotRetry && adv.RetryAt.IsZero()):
		d.NoRetryWhy = "advice: no retry advised yet"
	case adv.DoNotRetry:
		d.NoRetryWhy = "advice: no retry (" + adv.Reason + ")"
	default:
		d.NoRetryWhy = "advice: the advised retry is past"
	}
	return d
}

// RetryAhead says whether the advice has billing retry the payment after now.
func RetryAhead(adv *recoup.RetryAdvice, now time.Time) bool {
	return adv != nil && !adv.DoNotRetry && !adv.RetryAt.IsZero() && adv.RetryAt.After(now)
}

// CheckDeclineText checks free text against the decline class's plan: no promise of a
// retry where none will happen, no talk of card details where the bank only asks the
// customer to authenticate. It returns the violations, each naming the field and the class.
func (p *Policy) CheckDeclineText(field, text string, d DeclineFacts) []string {
	g := p.Guardrails
	if g == nil || strings.TrimSpace(text) == "" || (!d.NoRetryPromise && !d.NoCardDetails) {
		return nil
	}
	n := deobfuscate(Normalize(text))
	plain, joined := words(n), words(joinWords(n))
	match := func(cat string) string {
		m := g.matchers[cat]
		if m == nil {
			return ""
		}
		if f := m.find(plain); f != "" {
			return f
		}
		return m.find(joined)
	}
	var v []string
	if m := match("retry_promises"); m != "" && d.NoRetryPromise {
		why := fmt.Sprintf("decline class %s promises no retry", d.Class)
		if d.NoRetryWhy != "" {
			why = d.NoRetryWhy
		}
		v = append(v, fmt.Sprintf("%s says the payment will be tried again (%q) but %s", field, m, why))
	}
	if m := match("card_details"); m != "" && d.NoCardDetails {
		v = append(v, fmt.Sprintf("%s asks for card details (%q) but decline class %s needs only the customer's authentication", field, m, d.Class))
	}
	return v
}
