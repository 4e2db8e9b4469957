package templates_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/prompts"
)

// shipped is an editable copy of the shipped prompt set.
func shipped(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(prompts.Default, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(prompts.Default, p)
		m[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func edit(t *testing.T, m fstest.MapFS, name, old, new string) {
	t.Helper()
	s := string(m[name].Data)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	m[name] = &fstest.MapFile{Data: []byte(strings.Replace(s, old, new, 1)), Mode: 0o644}
}

func mustLoad(t *testing.T) *templates.Set {
	t.Helper()
	s, err := templates.Load("")
	if err != nil {
		t.Fatalf(`Load(""): %v`, err)
	}
	return s
}

func problems(t *testing.T, m fstest.MapFS) []string {
	t.Helper()
	_, err := templates.LoadFS(m)
	var le *templates.LintError
	if !errors.As(err, &le) {
		t.Fatalf("LoadFS = %v, want a *LintError", err)
	}
	var out []string
	for _, p := range le.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestShippedSetLoadsCleanly(t *testing.T) {
	s := mustLoad(t)
	hex12 := regexp.MustCompile(`^[0-9a-f]{12}$`)
	if !hex12.MatchString(s.Version) || !hex12.MatchString(s.PolicyVersion) || s.Version == s.PolicyVersion {
		t.Fatalf("versions %q / %q", s.Version, s.PolicyVersion)
	}
	if got := strings.Join(s.Locales(), ","); got != "de,en,es" {
		t.Fatalf("locales = %s", got)
	}
	if got := strings.Join(s.Variants(), ","); got != ",empathetic" {
		t.Fatalf("variants = %q", got)
	}
	if ps := templates.Lint(""); len(ps) != 0 {
		t.Fatalf("the shipped prompts have lint problems: %v", ps)
	}
}

func TestVersions(t *testing.T) {
	base, err := templates.LoadFS(shipped(t))
	if err != nil {
		t.Fatal(err)
	}
	m := shipped(t)
	edit(t, m, "messages/es/email_text.tmpl", "Hola:", "Buenas:")
	changed, err := templates.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	if changed.Version == base.Version || changed.PolicyVersion != base.PolicyVersion {
		t.Fatalf("a template edit: version %s→%s, policy %s→%s", base.Version, changed.Version, base.PolicyVersion, changed.PolicyVersion)
	}
	m = shipped(t)
	edit(t, m, "policy.yaml", "offer_valid_days: 14", "offer_valid_days: 10")
	pol, err := templates.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	if pol.PolicyVersion == base.PolicyVersion {
		t.Fatal("a policy edit did not change the policy version")
	}
}

func TestLintReportsFileLineAndProblem(t *testing.T) {
	cases := []struct {
		name  string
		apply func(fstest.MapFS)
		want  string
	}{
		{"payment link only with a first name", func(m fstest.MapFS) {
			edit(t, m, "messages/es/email_text.tmpl", "{{end}}: {{.PaymentURL}}", "{{end}}{{if .FirstName}}: {{.PaymentURL}}{{end}}")
		}, "messages/es/email_text.tmpl: must include the payment link"},
		{"no unsubscribe link", func(m fstest.MapFS) {
			edit(t, m, "messages/de/email_html.tmpl", `<a href="{{.UnsubscribeURL}}">Zahlungserinnerungen abbestellen</a>`, "")
		}, "messages/de/email_html.tmpl: must include the unsubscribe link"},
		{"SMS without STOP", func(m fstest.MapFS) {
			edit(t, m, "messages/en/sms.tmpl", "Reply STOP to opt out.", "")
		}, "messages/en/sms.tmpl: must tell the customer how to opt out"},
		{"SMS over two segments", func(m fstest.MapFS) {
			edit(t, m, "messages/en/sms.tmpl", "Reply STOP", "We value you as a customer and want to help you keep your account in good standing. Reply STOP")
		}, "messages/en/sms.tmpl: with a 160-character message (sms_max_chars) the SMS takes 3 GSM-7 segments"},
		{"non-GSM character makes UCS-2", func(m fstest.MapFS) {
			edit(t, m, "messages/es/sms.tmpl", "Responde STOP", "Contéstanos «STOP»")
		}, "UCS-2 segments"},
		{"undeclared variable", func(m fstest.MapFS) {
			edit(t, m, "messages/en/email_text.tmpl", "Amount due: {{.AmountDue}}", "Amount due: {{.AmountDue}} ({{.Language}})")
		}, "messages/en/email_text.tmpl:10: uses .Language, which is not in its vars: list"},
		{"unknown declared variable", func(m fstest.MapFS) {
			edit(t, m, "user.tmpl", "{{/* vars: .Step", "{{/* vars: .Email .Step")
		}, "user.tmpl:1: declares unknown variable .Email"},
		{"missing vars header", func(m fstest.MapFS) {
			edit(t, m, "messages/de/sms.tmpl", "{{/* vars: .Message .Incentive .PaymentURL */ -}}\n", "")
		}, "messages/de/sms.tmpl:1: must start with {{/* vars:"},
		{"syntax error", func(m fstest.MapFS) {
			edit(t, m, "messages/en/email_text.tmpl", "{{.Message}}", "{{.Message}")
		}, "messages/en/email_text.tmpl:4:"},
		{"policy error", func(m fstest.MapFS) {
			edit(t, m, "policy.yaml", "  messages: 2\n", "  messages: 0\n")
		}, "policy.yaml: contact_cap: messages and days must be at least 1"},
		{"unknown policy key", func(m fstest.MapFS) {
			edit(t, m, "policy.yaml", "offer_valid_days: 14", "offer_valid_dayz: 14")
		}, "policy.yaml:"},
		{"missing locale file", func(m fstest.MapFS) { delete(m, "messages/de/sms.tmpl") }, "messages/de/sms.tmpl: file is missing"},
		{"variant without prompts", func(m fstest.MapFS) { delete(m, "variants/empathetic/system.tmpl") }, `experiment variant "empathetic" has no directory`},
		{"prompt over the token budget", func(m fstest.MapFS) {
			edit(t, m, "policy.yaml", "prompt_token_budget: 1500", "prompt_token_budget: 200")
		}, "over the budget of 200"},
		{"schedule the contact cap forbids", func(m fstest.MapFS) {
			edit(t, m, "policy.yaml", "schedule_days: [0, 3, 7, 14]", "schedule_days: [0, 3, 6, 14]")
		}, "policy.yaml: contact_cap: step 3 (day 6) could never send"},
		{"missing guardrails", func(m fstest.MapFS) { delete(m, "guardrails.yaml") }, "guardrails.yaml: file is missing"},
		{"guardrails entry with a bad wildcard", func(m fstest.MapFS) {
			edit(t, m, "guardrails.yaml", "waiv*,", "wa*iv,")
		}, `guardrails.yaml:`},
		{"guardrails without a list for a message language", func(m fstest.MapFS) {
			edit(t, m, "guardrails.yaml", "  de: [\"*inkasso*\"", "  it: [\"*inkasso*\"")
		}, "guardrails.yaml: threats.de: missing"},
		{"a rule that announces its incentive", func(m fstest.MapFS) {
			edit(t, m, "policy.yaml", "Please update your payment details so that your account stays active.", "We have extended your grace period.")
		}, `policy.yaml: rules[2].message mentions more time to pay ("extended")`},
		{"a rule that threatens", func(m fstest.MapFS) {
			edit(t, m, "policy.yaml", "Actualiza tus datos de pago para que tu cuenta siga activa.", "Si no pagas, iremos a juicio.")
		}, `policy.yaml: rules[2].translations.es.message threatens the customer ("juicio")`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := shipped(t)
			tc.apply(m)
			got := problems(t, m)
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Fatalf("problems:\n%s\nwant one containing %q", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}

func TestLintDirectory(t *testing.T) {
	dir := t.TempDir()
	m := shipped(t)
	for name, f := range m {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ps := templates.Lint(dir); len(ps) != 0 {
		t.Fatalf("a copy of the shipped set: %v", ps)
	}
	if err := os.WriteFile(filepath.Join(dir, "messages/en/sms.tmpl"), []byte("{{/* vars: .Message */ -}}\n{{.Message}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ps := templates.Lint(dir); len(ps) < 2 {
		t.Fatalf("an SMS without link or STOP: %v", ps)
	}
	if ps := templates.Lint(filepath.Join(dir, "nope")); len(ps) != 1 || !strings.Contains(ps[0].Message, "PROMPTS_DIR") {
		t.Fatalf("missing directory: %v", ps)
	}
}

func message(lang string, inc templates.Incentive) templates.MessageData {
	return templates.MessageData{FirstName: "Ada", Subject: "Your payment", Message: "<script>alert(1)</script> Please update your card.",
		Tone: "friendly", Incentive: inc, AmountDue: "$49.00", PaymentURL: "https://pay.example/i/inv_1",
		UnsubscribeURL: "https://pay.example/u/cus_1", Language: lang}
}

func TestMessagesByLocale(t *testing.T) {
	s := mustLoad(t)
	dec := time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		lang, greeting, offer, sms string
	}{
		{"en-US", "Hi Ada,", "we'll take 10% off", "Reply STOP to opt out."},
		{"es-MX", "Hola Ada:", "antes del 13 de diciembre", "Responde STOP"},
		{"de-AT", "Hallo Ada,", "bis zum 13. Dezember", "STOP zum Abbestellen."},
		{"fr-FR", "Hi Ada,", "December 13", "Reply STOP"}, // no French messages: English
	}
	for _, tc := range cases {
		inc := templates.Incentive{Kind: recoup.IncentiveDiscountPercent, Value: 10, Expires: templates.FormatDate(dec, tc.lang)}
		d := message(tc.lang, inc)
		_, text, html, err := s.Email(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{tc.greeting, tc.offer, d.PaymentURL, d.UnsubscribeURL} {
			if !strings.Contains(text, want) {
				t.Errorf("%s text lacks %q:\n%s", tc.lang, want, text)
			}
		}
		if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") {
			t.Errorf("%s HTML does not escape the message", tc.lang)
		}
		sms, err := s.SMS(d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sms, tc.sms) || strings.Contains(sms, "\n") || strings.Contains(sms, "  ") {
			t.Errorf("%s SMS = %q", tc.lang, sms)
		}
	}
}

func TestPromptVariants(t *testing.T) {
	s := mustLoad(t)
	d := templates.PromptData{Step: 1, TotalSteps: 4, Plan: "pro", AllowedChannels: []string{"email"}, Language: "es-ES",
		Tones: s.Policy.Tones, MaxDiscountPercent: 10, MaxExtensionDays: 14, SMSMaxChars: 160, EmailMaxChars: 1200, SubjectMaxChars: 100}
	sys, user, err := s.Prompt("", d)
	if err != nil {
		t.Fatal(err)
	}
	empSys, empUser, err := s.Prompt("empathetic", d)
	if err != nil {
		t.Fatal(err)
	}
	if sys == empSys || !strings.Contains(empSys, "assumes good faith") {
		t.Fatal("the empathetic variant did not use its own system prompt")
	}
	if user != empUser || !strings.Contains(user, "<customer_data>") || !strings.Contains(user, "language: es-ES") {
		t.Fatalf("user prompt = %q", user)
	}
	if strings.Contains(sys, "{{") {
		t.Fatal("unrendered template syntax in the prompt")
	}
}

func TestFormatDate(t *testing.T) {
	d := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for lang, want := range map[string]string{"en": "March 1", "es-ES": "1 de marzo", "de": "1. März", "xx": "March 1"} {
		if got := templates.FormatDate(d, lang); got != want {
			t.Errorf("FormatDate(%s) = %q, want %q", lang, got, want)
		}
	}
}

func writeSet(t *testing.T, dir string, m fstest.MapFS) {
	t.Helper()
	for name, f := range m {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatcherActivatesGoodChangesOnly(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, shipped(t))
	w, err := templates.NewWatcher(dir, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := w.Current().Version
	if w.Check() {
		t.Fatal("nothing changed, yet the set changed")
	}
	// A good edit becomes active.
	p := filepath.Join(dir, "messages/en/email_text.tmpl")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "Hi {{.FirstName}},", "Dear {{.FirstName}},", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !w.Check() || w.Current().Version == first {
		t.Fatal("a valid edit did not become active")
	}
	good := w.Current().Version
	// A broken edit is refused and the last good set keeps serving.
	if err := os.WriteFile(filepath.Join(dir, "messages/en/sms.tmpl"), []byte("{{/* vars: .Message */ -}}\n{{.Message}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w.Check() || w.Current().Version != good {
		t.Fatal("a broken edit replaced the last good set")
	}
	_, text, _, err := w.Current().Email(message("en", templates.Incentive{}))
	if err != nil || !strings.Contains(text, "Dear Ada,") {
		t.Fatalf("the active set renders %q, %v", text, err)
	}
}

func TestAPromptDirectoryWithoutRepliesUsesTheShippedOnes(t *testing.T) {
	m := shipped(t)
	delete(m, "replies.yaml")
	delete(m, "reply.tmpl")
	set, err := templates.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	if set.Replies == nil || set.Version != mustLoad(t).Version {
		t.Fatalf("replies %v, version %s", set.Replies, set.Version)
	}
}

func TestRepliesFileIsLintedAndVersioned(t *testing.T) {
	m := shipped(t)
	before := mustLoad(t).Version
	edit(t, m, "replies.yaml", "dispute_or_fraud: stop_escalate", "dispute_or_fraud: pause_until")
	got := problems(t, m)
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "replies.yaml:") || !strings.Contains(strings.Join(got, "\n"), "dispute_or_fraud may not pause_until") {
		t.Fatalf("problems = %q", got)
	}
	m = shipped(t)
	edit(t, m, "replies.yaml", "min_confidence: 0.6", "min_confidence: 0.7")
	set, err := templates.LoadFS(m)
	if err != nil {
		t.Fatal(err)
	}
	if set.Version == before || set.Replies.MinConfidence != 0.7 {
		t.Fatalf("version %s (before %s), min_confidence %v", set.Version, before, set.Replies.MinConfidence)
	}
	m = shipped(t)
	edit(t, m, "reply.tmpl", "{{.Today}}", "{{.Tomorrow}}")
	if got := problems(t, m); !strings.Contains(strings.Join(got, "\n"), "reply.tmpl") {
		t.Fatalf("an unknown variable in reply.tmpl: problems = %q", got)
	}
}
