// Package templates loads the prompt set in prompts/ (embedded default or PROMPTS_DIR),
// lints it, renders the LLM prompts (per A/B variant) and the customer messages (per
// locale) from it, and reloads it when the directory changes. The content hash of the set
// is the prompt version recorded with every decision; the hash of policy.yaml and
// guardrails.yaml alone is the policy version.
package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"

	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/declines"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/replies"
	"github.com/recoup-dunning/recoup/prompts"
)

// Layout of a prompt set.
const (
	PolicyFile = "policy.yaml"
	// GuardrailsFile holds the word lists the model's text is checked against.
	GuardrailsFile = "guardrails.yaml"
	SystemFile     = "system.tmpl"
	// RepliesFile maps a customer's reply intent to what the run does, with the rules
	// fallback's phrases; ReplyFile is the system prompt that classifies a reply.
	RepliesFile = "replies.yaml"
	// DeclinesFile maps payment failure codes to decline classes and each class to its
	// message plan (internal/model/declines).
	DeclinesFile = declines.File
	ReplyFile    = "reply.tmpl"
	UserFile     = "user.tmpl"
	MessagesDir  = "messages" // messages/<locale>/{email_text,email_html,sms}.tmpl
	VariantsDir  = "variants" // variants/<name>/{system,user}.tmpl, each optional
	EmailText    = "email_text.tmpl"
	EmailHTML    = "email_html.tmpl"
	SMSFile      = "sms.tmpl"
	// DefaultLocale's messages must exist; other locales fall back to it.
	DefaultLocale = "en"
)

// Set is a loaded, checked prompt set. It is immutable.
type Set struct {
	Policy        *policy.Policy
	Replies       *replies.Config // replies.yaml
	Declines      *declines.Table // declines.yaml
	Version       string          // first 12 hex digits of the SHA-256 over every file's name and content
	PolicyVersion string          // the same over policy.yaml and guardrails.yaml alone

	files    map[string][]byte
	prompts  map[string]*promptTemplates  // "" (default) and each variant
	messages map[string]*messageTemplates // by locale
	reply    *texttemplate.Template
}

type promptTemplates struct{ system, user *texttemplate.Template }

type messageTemplates struct {
	emailText, sms *texttemplate.Template
	emailHTML      *htmltemplate.Template
}

// PromptData fills the system and user prompt templates. It holds no contact data; every
// string in it is data about the customer, sanitised and length-limited before it is used.
// Prompt puts the strings on one line with <, > and & escaped (as \u003c, \u003e, \u0026)
// and reduces Language to a plain language tag, so that no value can close the
// <customer_data> block, add a line to it, or speak outside it.
type PromptData struct {
	Step, TotalSteps                            int
	Plan                                        string
	TenureDays                                  int
	LifetimeValue, AmountDue                    string
	FailureCode                                 string
	PaymentsSucceeded, PaymentsFailed           int
	EarlierRuns, EarlierRunsRecovered           int
	MessagesThisRun                             int
	AllowedChannels                             []string
	Language                                    string
	Tones                                       []string
	MaxDiscountPercent, MaxExtensionDays        int
	SMSMaxChars, EmailMaxChars, SubjectMaxChars int
	// The failure code's decline class (declines.yaml) and its plan: operators' text, not
	// the customer's. DeclineLink is declines.LinkPaymentMethod or LinkAuthentication.
	DeclineClass, DeclineGuidance, DeclineLink string
	PromiseRetry                               bool
	// RetryAdvice is the run's newest retry advice in one line (RetryAdviceLine): when
	// billing retries and how many attempts are left, or why it will not.
	RetryAdvice string
}

// RetryAdviceLine writes the run's newest retry advice for the prompt: "Billing will retry
// the payment at <time in the customer's zone> (N attempts left)." when the retry is after
// now, else "No further automatic retry: <reason>." It names no customer.
func RetryAdviceLine(adv *recoup.RetryAdvice, now time.Time, timeZone string) string {
	switch {
	case adv == nil || (!adv.DoNotRetry && adv.RetryAt.IsZero()):
		return "No further automatic retry: none advised yet."
	case !adv.DoNotRetry && adv.RetryAt.After(now):
		loc, err := time.LoadLocation(timeZone)
		if err != nil || timeZone == "" || timeZone == "Local" {
			loc = time.UTC
		}
		left := fmt.Sprintf("%d attempts left", adv.Remaining)
		if adv.Remaining == 1 {
			left = "1 attempt left"
		}
		return fmt.Sprintf("Billing will retry the payment at %s (%s).", adv.RetryAt.In(loc).Format("Mon 2 Jan 2006 15:04 MST"), left)
	case !adv.DoNotRetry:
		return "No further automatic retry: the advised retry is past."
	}
	return "No further automatic retry: " + strings.TrimSuffix(escapeData(adv.Reason), ".") + "."
}

// WithDecline fills the prompt data's decline class and its plan from the set's table.
func (s *Set) WithDecline(d PromptData, class recoup.DeclineClass) PromptData {
	p := s.Declines.Plan(class)
	d.DeclineClass, d.DeclineGuidance, d.DeclineLink, d.PromiseRetry = string(class), strings.TrimSpace(p.Guidance), p.Link, p.PromiseRetry
	return d
}

// safePromptData escapes the customer's strings and reduces the locale to a language tag.
func safePromptData(d PromptData) PromptData {
	d.Language = promptLanguage(d.Language)
	d.Plan, d.LifetimeValue, d.AmountDue, d.FailureCode = escapeData(d.Plan), escapeData(d.LifetimeValue), escapeData(d.AmountDue), escapeData(d.FailureCode)
	channels := make([]string, len(d.AllowedChannels))
	for i, c := range d.AllowedChannels {
		channels[i] = escapeData(c)
	}
	d.AllowedChannels = channels
	return d
}

var dataEscaper = strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`)

// escapeData makes a customer's value safe in a prompt: one line, and <, > and & escaped.
func escapeData(s string) string { return dataEscaper.Replace(strings.Join(strings.Fields(s), " ")) }

// promptLanguage reduces a customer's locale to language and region ("es-MX"); anything that
// is not a BCP 47 tag becomes DefaultLocale. The language is named in the system prompt.
func promptLanguage(tag string) string {
	t, err := language.Parse(tag)
	if err != nil || tag == "" {
		return DefaultLocale
	}
	base, _ := t.Base()
	if r, conf := t.Region(); conf == language.Exact {
		return base.String() + "-" + r.String()
	}
	return base.String()
}

// Incentive is what the message templates know of an offer.
type Incentive struct {
	Kind    string // "", discount_percent or extension_days
	Value   int
	Expires string // the offer's last day, formatted for the locale
}

// MessageData fills the email and SMS templates.
type MessageData struct {
	FirstName  string // shown only when GreetingName accepts it
	Subject    string
	Message    string
	Tone       string
	Incentive  Incentive
	AmountDue  string
	PaymentURL string
	// Link is what the payment link asks of the customer, from the decline class's plan:
	// "authentication" (confirm the payment) or anything else (update the payment details).
	Link           string
	UnsubscribeURL string
	Language       string // BCP 47 tag of the customer's locale, e.g. es-ES
}

// Load reads a prompt set from dir, or the embedded default when dir is empty.
func Load(dir string) (*Set, error) {
	if dir == "" {
		return LoadFS(prompts.Default)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("PROMPTS_DIR: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("PROMPTS_DIR: %s is not a directory", dir)
	}
	return LoadFS(os.DirFS(dir))
}

var funcs = texttemplate.FuncMap{"join": strings.Join}

// LoadFS reads a prompt set and lints it; any problem refuses the whole set (a
// *LintError lists them as file:line: message).
func LoadFS(fsys fs.FS) (*Set, error) {
	s, problems := parseSet(fsys)
	if len(problems) == 0 {
		problems = s.lint()
	}
	if len(problems) > 0 {
		return nil, &LintError{Problems: problems}
	}
	return s, nil
}

// parseSet reads and parses every file; it returns what it could build and the problems.
func parseSet(fsys fs.FS) (*Set, []Problem) {
	b := &setBuilder{s: &Set{files: map[string][]byte{}, prompts: map[string]*promptTemplates{}, messages: map[string]*messageTemplates{}}}
	if err := b.readFiles(fsys); err != nil {
		return b.s, []Problem{{File: ".", Line: 0, Message: err.Error()}}
	}
	b.addShippedReplyFiles()
	b.s.Version = hashFiles(b.s.files, nil)
	b.s.PolicyVersion = hashFiles(b.s.files, func(n string) bool { return n == PolicyFile || n == GuardrailsFile })
	b.checkRequiredFiles()
	b.parsePolicy()
	b.parseReplies()
	b.parseDeclines()
	b.parseTemplates()
	b.checkLocalesComplete()
	b.checkVariantDirectories()
	sort.Slice(b.problems, func(i, j int) bool {
		if b.problems[i].File != b.problems[j].File {
			return b.problems[i].File < b.problems[j].File
		}
		return b.problems[i].Line < b.problems[j].Line
	})
	return b.s, b.problems
}

// setBuilder is the Set parseSet builds and the problems it has found so far.
type setBuilder struct {
	s        *Set
	problems []Problem
}

func (b *setBuilder) problem(file, message string) {
	b.problems = append(b.problems, Problem{File: file, Message: message})
}

// readFiles reads every template and the policy, guardrails and replies files into s.files.
func (b *setBuilder) readFiles(fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (!strings.HasSuffix(p, ".tmpl") && p != PolicyFile && p != GuardrailsFile && p != RepliesFile && p != DeclinesFile) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		b.s.files[p] = data
		return nil
	})
}

// addShippedReplyFiles adds the shipped replies.yaml, reply.tmpl and declines.yaml where the
// set lacks them: a prompt directory written before replies (or the decline taxonomy)
// existed hears replies and classifies failure codes with the shipped files.
func (b *setBuilder) addShippedReplyFiles() {
	for _, f := range []string{RepliesFile, ReplyFile, DeclinesFile} {
		if _, ok := b.s.files[f]; !ok {
			if data, err := fs.ReadFile(prompts.Default, f); err == nil {
				b.s.files[f] = data
			}
		}
	}
}

// checkRequiredFiles reports each file every set must have that is missing.
func (b *setBuilder) checkRequiredFiles() {
	required := []string{PolicyFile, GuardrailsFile, SystemFile, UserFile,
		path.Join(MessagesDir, DefaultLocale, EmailText), path.Join(MessagesDir, DefaultLocale, EmailHTML),
		path.Join(MessagesDir, DefaultLocale, SMSFile)}
	for _, r := range required {
		if _, ok := b.s.files[r]; !ok {
			b.problem(r, "file is missing")
		}
	}
}

// parsePolicy parses the policy and the guardrails files, attaching the guardrails to the policy.
func (b *setBuilder) parsePolicy() {
	if pb, ok := b.s.files[PolicyFile]; ok {
		pol, err := policy.Parse(pb)
		if err != nil {
			b.problems = append(b.problems, policyProblems(err)...)
		}
		b.s.Policy = pol
	}
	if gb, ok := b.s.files[GuardrailsFile]; ok {
		g, err := policy.ParseGuardrails(gb)
		if err != nil {
			b.problems = append(b.problems, fileProblems(GuardrailsFile, err)...)
		}
		if b.s.Policy != nil {
			b.s.Policy.Guardrails = g
		}
	}
}

// parseReplies parses replies.yaml, each of its problems on its line.
func (b *setBuilder) parseReplies() {
	rb, ok := b.s.files[RepliesFile]
	if !ok {
		return
	}
	rc, err := replies.Parse(rb)
	var pe *replies.ParseError
	switch {
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			b.problems = append(b.problems, Problem{File: RepliesFile, Line: p.Line, Message: p.Message})
		}
	case err != nil:
		b.problem(RepliesFile, err.Error())
	}
	b.s.Replies = rc
}

// parseDeclines parses declines.yaml, each of its problems on its line.
func (b *setBuilder) parseDeclines() {
	data, ok := b.s.files[DeclinesFile]
	if !ok {
		b.problem(DeclinesFile, "file is missing")
		return
	}
	t, err := declines.Parse(data)
	var pe *declines.ParseError
	switch {
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			b.problems = append(b.problems, Problem{File: DeclinesFile, Line: p.Line, Message: p.Message})
		}
	case err != nil:
		b.problem(DeclinesFile, err.Error())
	}
	b.s.Declines = t
}

// Decline classifies a payment failure code with declines.yaml and says what the class's
// plan allows at this point of the run: step is the 1-based step being decided and failures
// how many payment failures the run has seen (the first one included), so the plan
// after_failed_retry waits at step 1 while failures is 1; from step 2 the run sends even
// when no retry has failed (billing may never report one).
func (s *Set) Decline(code string, step, failures int) (policy.DeclineFacts, declines.Classification) {
	c := s.Declines.Classify(code)
	return s.DeclineFacts(c.Class, step, failures), c
}

// DeclineFacts are what a decline class's plan allows at step (1-based) after failures
// payment failures; see Decline.
func (s *Set) DeclineFacts(class recoup.DeclineClass, step, failures int) policy.DeclineFacts {
	p := s.Declines.Plan(class)
	return policy.DeclineFacts{Class: class, NoRetryPromise: !p.PromiseRetry,
		NoCardDetails: p.Link == declines.LinkAuthentication,
		Wait:          p.FirstMessage == declines.FirstAfterFailedRetry && failures <= 1 && step <= 1,
		RulesMessages: p.Messages}
}

// text parses the text template file name; nil when it is absent or does not parse.
func (b *setBuilder) text(name string) *texttemplate.Template {
	data, ok := b.s.files[name]
	if !ok {
		return nil
	}
	t, err := texttemplate.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(data))
	if err != nil {
		b.problems = append(b.problems, templateProblem(name, err))
		return nil
	}
	return t
}

// parseTemplates parses the default prompts and the reply prompt, then each variant's
// prompts and each locale's message templates.
func (b *setBuilder) parseTemplates() {
	b.s.prompts[""] = &promptTemplates{system: b.text(SystemFile), user: b.text(UserFile)}
	b.s.reply = b.text(ReplyFile)
	for name := range b.s.files {
		dir, file := path.Split(name)
		parts := strings.Split(strings.Trim(dir, "/"), "/")
		switch {
		case len(parts) == 2 && parts[0] == VariantsDir:
			b.parseVariantFile(name, parts[1], file)
		case len(parts) == 2 && parts[0] == MessagesDir:
			b.parseLocaleFile(name, parts[1], file)
		}
	}
}

// parseVariantFile parses file name, one of variant v's prompt templates.
func (b *setBuilder) parseVariantFile(name, v, file string) {
	if b.s.prompts[v] == nil {
		b.s.prompts[v] = &promptTemplates{}
	}
	switch file {
	case SystemFile:
		b.s.prompts[v].system = b.text(name)
	case UserFile:
		b.s.prompts[v].user = b.text(name)
	default:
		b.problem(name, "unknown file: a variant has system.tmpl and user.tmpl")
	}
}

// parseLocaleFile parses file name, one of locale loc's message templates.
func (b *setBuilder) parseLocaleFile(name, loc, file string) {
	if _, err := language.Parse(loc); err != nil {
		b.problem(name, fmt.Sprintf("%q is not a BCP 47 locale like es or de-AT", loc))
		return
	}
	m := b.s.messages[loc]
	if m == nil {
		m = &messageTemplates{}
		b.s.messages[loc] = m
	}
	switch file {
	case EmailText:
		m.emailText = b.text(name)
	case SMSFile:
		m.sms = b.text(name)
	case EmailHTML:
		t, err := htmltemplate.New(name).Option("missingkey=error").Parse(string(b.s.files[name]))
		if err != nil {
			b.problems = append(b.problems, templateProblem(name, err))
		}
		m.emailHTML = t
	default:
		b.problem(name, "unknown file: a locale has email_text.tmpl, email_html.tmpl and sms.tmpl")
	}
}

// checkLocalesComplete reports each message template a locale lacks (unless that file
// already has a problem).
func (b *setBuilder) checkLocalesComplete() {
	for loc, m := range b.s.messages {
		for file, missing := range map[string]bool{EmailText: m.emailText == nil, EmailHTML: m.emailHTML == nil, SMSFile: m.sms == nil} {
			if missing && !hasProblem(b.problems, path.Join(MessagesDir, loc, file)) {
				b.problem(path.Join(MessagesDir, loc, file), "file is missing (every locale needs all three message templates)")
			}
		}
	}
}

// checkVariantDirectories reports each experiment variant of the policy (but control) that
// has no directory of prompts.
func (b *setBuilder) checkVariantDirectories() {
	if b.s.Policy == nil {
		return
	}
	for _, v := range b.s.Policy.Experiment.Variants {
		if v.Name != "control" && b.s.prompts[v.Name] == nil {
			b.problems = append(b.problems, Problem{File: PolicyFile, Line: 0,
				Message: fmt.Sprintf("experiment variant %q has no directory %s/%s", v.Name, VariantsDir, v.Name)})
		}
	}
}

func hasProblem(ps []Problem, file string) bool {
	for _, p := range ps {
		if p.File == file {
			return true
		}
	}
	return false
}

func hashFiles(files map[string][]byte, keep func(string) bool) string {
	names := make([]string, 0, len(files))
	for n := range files {
		if keep == nil || keep(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Locales lists the locales with message templates.
func (s *Set) Locales() []string {
	out := make([]string, 0, len(s.messages))
	for l := range s.messages {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// Variants lists the prompt variants ("" is the default).
func (s *Set) Variants() []string {
	out := make([]string, 0, len(s.prompts))
	for v := range s.prompts {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Locale picks the message locale for a customer's BCP 47 tag: the exact tag, then its
// language (es-MX → es), then DefaultLocale.
func (s *Set) Locale(tag string) string {
	if _, ok := s.messages[tag]; ok && tag != "" {
		return tag
	}
	if t, err := language.Parse(tag); err == nil {
		base, _ := t.Base()
		if _, ok := s.messages[base.String()]; ok {
			return base.String()
		}
	}
	return DefaultLocale
}

// Prompt renders the system and user messages for the model with a variant's prompts
// (a variant without its own file uses the default one).
func (s *Set) Prompt(variant string, d PromptData) (system, user string, err error) {
	d = safePromptData(d)
	def := s.prompts[""]
	sys, usr := def.system, def.user
	if v := s.prompts[variant]; v != nil && variant != "" {
		if v.system != nil {
			sys = v.system
		}
		if v.user != nil {
			usr = v.user
		}
	}
	var b strings.Builder
	if err := sys.Execute(&b, d); err != nil {
		return "", "", err
	}
	system = b.String()
	b.Reset()
	if err := usr.Execute(&b, d); err != nil {
		return "", "", err
	}
	return system, b.String(), nil
}

// ReplyData fills reply.tmpl, the system prompt that classifies a customer's reply. The
// reply itself is never a template value: it goes in the user message (ReplyPrompt).
type ReplyData struct {
	Intents  []string // the closed set, recoup.Intents
	Language string   // the customer's language tag, e.g. es-ES
	Today    string   // YYYY-MM-DD in the customer's zone
}

// ReplyPrompt renders the system message that classifies a reply and the user message that
// carries it, inside <reply>…</reply> with <, > and & escaped so that it cannot close the
// block.
func (s *Set) ReplyPrompt(d ReplyData, reply string) (system, user string, err error) {
	if s.reply == nil {
		return "", "", errors.New("the prompt set has no " + ReplyFile)
	}
	d.Language = promptLanguage(d.Language)
	var b strings.Builder
	if err := s.reply.Execute(&b, d); err != nil {
		return "", "", err
	}
	return b.String(), "<reply>\n" + dataEscaper.Replace(reply) + "\n</reply>", nil
}

// Email renders an email's subject, plain text and HTML bodies in the customer's locale.
func (s *Set) Email(d MessageData) (subject, text, html string, err error) {
	d.FirstName = GreetingName(d.FirstName)
	m := s.messages[s.Locale(d.Language)]
	var b strings.Builder
	if err := m.emailText.Execute(&b, d); err != nil {
		return "", "", "", err
	}
	text = b.String()
	b.Reset()
	if err := m.emailHTML.Execute(&b, d); err != nil {
		return "", "", "", err
	}
	return strings.TrimSpace(d.Subject), text, b.String(), nil
}

// SMS renders an SMS body in the customer's locale, whitespace collapsed.
func (s *Set) SMS(d MessageData) (string, error) {
	d.FirstName = GreetingName(d.FirstName)
	m := s.messages[s.Locale(d.Language)]
	var b strings.Builder
	if err := m.sms.Execute(&b, d); err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}

// FormatDate writes a date the way a locale does ("December 13", "13 de diciembre",
// "13. Dezember"); other locales get the English form.
func FormatDate(t time.Time, tag string) string {
	base := "en"
	if lt, err := language.Parse(tag); err == nil {
		b, _ := lt.Base()
		base = b.String()
	}
	switch base {
	case "es":
		return fmt.Sprintf("%d de %s", t.Day(), monthsES[t.Month()-1])
	case "de":
		return fmt.Sprintf("%d. %s", t.Day(), monthsDE[t.Month()-1])
	}
	return t.Format("January 2")
}

var (
	monthsES = []string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"}
	monthsDE = []string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}
)
