// Package templates loads the prompt set in prompts/ (embedded default or PROMPTS_DIR) and
// renders the LLM prompts and the customer messages from it. The content hash of the set
// is the prompt version recorded with every decision.
package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"sort"
	"strings"
	texttemplate "text/template"

	"github.com/recoup-dunning/recoup/internal/policy"
	"github.com/recoup-dunning/recoup/prompts"
)

// Files every prompt set must contain.
var Files = []string{"system.tmpl", "user.tmpl", "email_text.tmpl", "email_html.tmpl", "sms.tmpl", "policy.yaml"}

// Set is a loaded, checked prompt set.
type Set struct {
	Policy  *policy.Policy
	Version string // first 12 hex digits of the SHA-256 over the files' names and contents

	system, user, emailText, sms *texttemplate.Template
	emailHTML                    *htmltemplate.Template
}

// PromptData fills the system and user prompt templates. It holds no contact data.
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
}

// MessageData fills the email and SMS templates.
type MessageData struct {
	FirstName      string
	Subject        string
	Message        string
	Incentive      string // sentence describing the offer, empty when none
	AmountDue      string
	PaymentURL     string
	UnsubscribeURL string
	Language       string
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

// LoadFS reads and checks a prompt set.
func LoadFS(fsys fs.FS) (*Set, error) {
	content := map[string][]byte{}
	var errs []error
	for _, name := range Files {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		content[name] = b
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Set{Version: version(content)}
	parseText := func(name string) *texttemplate.Template {
		t, err := texttemplate.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(content[name]))
		if err != nil {
			errs = append(errs, err)
		}
		return t
	}
	s.system = parseText("system.tmpl")
	s.user = parseText("user.tmpl")
	s.emailText = parseText("email_text.tmpl")
	s.sms = parseText("sms.tmpl")
	var err error
	if s.emailHTML, err = htmltemplate.New("email_html.tmpl").Option("missingkey=error").Parse(string(content["email_html.tmpl"])); err != nil {
		errs = append(errs, err)
	}
	if s.Policy, err = policy.Parse(content["policy.yaml"]); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

func version(content map[string][]byte) string {
	names := make([]string, 0, len(content))
	for n := range content {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(content[n]))
		h.Write(content[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// check renders every template against sample data and makes sure the parts that must
// never be left out (payment link, unsubscribe footer, SMS opt-out) are there. It renders
// twice, with and without the optional parts (first name, incentive), so that a mandatory
// part hidden inside an {{if}} is caught too.
func (s *Set) check() error {
	full := MessageData{FirstName: "Ada", Subject: "Your payment", Message: "Your payment failed.",
		Incentive: "We extended your grace period by 7 days.", AmountDue: "$49.00",
		PaymentURL: "https://pay.example/check-link", UnsubscribeURL: "https://pay.example/check-unsubscribe", Language: "en"}
	bare := full
	bare.FirstName, bare.Incentive = "", ""
	var errs []error
	seen := map[string]bool{}
	add := func(err error) {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	for _, d := range []MessageData{full, bare} {
		_, text, html, err := s.Email(d)
		if err != nil {
			add(err)
		}
		for _, f := range []struct{ name, body string }{{"email_text.tmpl", text}, {"email_html.tmpl", html}} {
			if err == nil && !strings.Contains(f.body, d.PaymentURL) {
				add(fmt.Errorf("%s: must include the payment link {{.PaymentURL}}", f.name))
			}
			if err == nil && !strings.Contains(f.body, d.UnsubscribeURL) {
				add(fmt.Errorf("%s: must include the unsubscribe link {{.UnsubscribeURL}}", f.name))
			}
		}
		sms, err := s.SMS(d)
		if err != nil {
			add(err)
		} else {
			if !strings.Contains(sms, d.PaymentURL) {
				add(errors.New("sms.tmpl: must include the payment link {{.PaymentURL}}"))
			}
			if !strings.Contains(sms, "STOP") {
				add(errors.New(`sms.tmpl: must tell the customer to "Reply STOP to opt out"`))
			}
		}
	}
	if _, _, err := s.Prompt(PromptData{Step: 1, TotalSteps: 4, AllowedChannels: []string{"email"}, Tones: s.Policy.Tones}); err != nil {
		add(err)
	}
	return errors.Join(errs...)
}

// Prompt renders the system and user messages for the model.
func (s *Set) Prompt(d PromptData) (system, user string, err error) {
	var b strings.Builder
	if err := s.system.Execute(&b, d); err != nil {
		return "", "", err
	}
	system = b.String()
	b.Reset()
	if err := s.user.Execute(&b, d); err != nil {
		return "", "", err
	}
	return system, b.String(), nil
}

// Email renders an email's subject, plain text and HTML bodies.
func (s *Set) Email(d MessageData) (subject, text, html string, err error) {
	var b strings.Builder
	if err := s.emailText.Execute(&b, d); err != nil {
		return "", "", "", err
	}
	text = b.String()
	b.Reset()
	if err := s.emailHTML.Execute(&b, d); err != nil {
		return "", "", "", err
	}
	return strings.TrimSpace(d.Subject), text, b.String(), nil
}

// SMS renders an SMS body.
func (s *Set) SMS(d MessageData) (string, error) {
	var b strings.Builder
	if err := s.sms.Execute(&b, d); err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}
