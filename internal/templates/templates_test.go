package templates_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/recoup-dunning/recoup/internal/templates"
	"github.com/recoup-dunning/recoup/prompts"
)

// defaultFiles is an editable copy of the shipped prompt set.
func defaultFiles(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for _, name := range templates.Files {
		b, err := fs.ReadFile(prompts.Default, name)
		if err != nil {
			t.Fatalf("shipped prompt set: %v", err)
		}
		m[name] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	return m
}

func edit(t *testing.T, m fstest.MapFS, name, old, new string) {
	t.Helper()
	s := string(m[name].Data)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	m[name] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(s, old, new)), Mode: 0o644}
}

func mustLoadDefault(t *testing.T) *templates.Set {
	t.Helper()
	s, err := templates.Load("")
	if err != nil {
		t.Fatalf(`Load(""): %v`, err)
	}
	return s
}

var hex12 = regexp.MustCompile(`^[0-9a-f]{12}$`)

func TestLoadDefault(t *testing.T) {
	s := mustLoadDefault(t)
	if !hex12.MatchString(s.Version) {
		t.Errorf("Version = %q, want 12 lower-case hex digits", s.Version)
	}
	if s.Policy == nil || len(s.Policy.Rules) == 0 {
		t.Fatalf("Policy not loaded: %+v", s.Policy)
	}
	again := mustLoadDefault(t)
	if again.Version != s.Version {
		t.Errorf("Version changed between loads: %q then %q", s.Version, again.Version)
	}
	fromMap, err := templates.LoadFS(defaultFiles(t))
	if err != nil {
		t.Fatalf("LoadFS(copy of the default): %v", err)
	}
	if fromMap.Version != s.Version {
		t.Errorf("the same files in another FS give Version %q, want %q", fromMap.Version, s.Version)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, f := range defaultFiles(t) {
		if err := os.WriteFile(filepath.Join(dir, name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := templates.Load(dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	if s.Version != mustLoadDefault(t).Version {
		t.Errorf("a directory with the default files has Version %q, want the default's", s.Version)
	}

	if _, err := templates.Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "PROMPTS_DIR") {
		t.Errorf("Load(missing dir) = %v, want an error naming PROMPTS_DIR", err)
	}
	if _, err := templates.Load(filepath.Join(dir, "sms.tmpl")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Load(a file) = %v, want a 'not a directory' error", err)
	}
}

func TestVersionChangesWithAnyFile(t *testing.T) {
	base := mustLoadDefault(t).Version
	seen := map[string]string{base: "default"}
	for _, name := range templates.Files {
		m := defaultFiles(t)
		suffix := "\n{{/* edited */}}\n"
		if name == "policy.yaml" {
			suffix = "\n# edited\n"
		}
		m[name] = &fstest.MapFile{Data: append(append([]byte{}, m[name].Data...), suffix...)}
		s, err := templates.LoadFS(m)
		if err != nil {
			t.Fatalf("LoadFS with %s edited: %v", name, err)
		}
		if prev, dup := seen[s.Version]; dup {
			t.Errorf("editing %s gives Version %s, the same as %s", name, s.Version, prev)
		}
		seen[s.Version] = name
	}
}

func TestLoadFSRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, m fstest.MapFS)
		want   []string
	}{
		{"email_text.tmpl without the payment link", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_text.tmpl", "{{.PaymentURL}}", "")
		}, []string{"email_text.tmpl", "payment link"}},
		{"email_html.tmpl without the payment link", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_html.tmpl", "{{.PaymentURL}}", "#")
		}, []string{"email_html.tmpl", "payment link"}},
		{"email_text.tmpl without the unsubscribe link", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_text.tmpl", "{{.UnsubscribeURL}}", "")
		}, []string{"email_text.tmpl", "unsubscribe link"}},
		{"email_html.tmpl without the unsubscribe link", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_html.tmpl", "{{.UnsubscribeURL}}", "#")
		}, []string{"email_html.tmpl", "unsubscribe link"}},
		{"payment link only when there is an incentive", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_text.tmpl", "Update your payment details: {{.PaymentURL}}",
				"{{if .Incentive}}Update your payment details: {{.PaymentURL}}{{end}}")
		}, []string{"email_text.tmpl", "payment link"}},
		{"unsubscribe link only for named customers", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_html.tmpl", `<a href="{{.UnsubscribeURL}}">`, `{{if .FirstName}}<a href="{{.UnsubscribeURL}}">{{end}}`)
		}, []string{"email_html.tmpl", "unsubscribe link"}},
		{"sms.tmpl without STOP", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "sms.tmpl", "Reply STOP to opt out.", "")
		}, []string{"sms.tmpl", "STOP"}},
		{"sms.tmpl without the payment link", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "sms.tmpl", "{{.PaymentURL}}", "")
		}, []string{"sms.tmpl", "payment link"}},
		{"missing file", func(t *testing.T, m fstest.MapFS) { delete(m, "user.tmpl") }, []string{"user.tmpl"}},
		{"two missing files", func(t *testing.T, m fstest.MapFS) {
			delete(m, "system.tmpl")
			delete(m, "policy.yaml")
		}, []string{"system.tmpl", "policy.yaml"}},
		{"template syntax error", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "system.tmpl", "{{join .Tones", "{{join .Tones {{")
		}, []string{"system.tmpl"}},
		{"html syntax error", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "email_html.tmpl", "{{.Message}}", "{{.Message")
		}, []string{"email_html.tmpl"}},
		{"unknown field in a template", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "user.tmpl", "{{.Plan}}", "{{.PlanName}}")
		}, []string{"user.tmpl", "PlanName"}},
		{"unknown function", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "sms.tmpl", "{{.Message}}", "{{upper .Message}}")
		}, []string{"sms.tmpl", "upper"}},
		{"invalid policy", func(t *testing.T, m fstest.MapFS) {
			edit(t, m, "policy.yaml", "schedule_days: [0, 3, 7, 14]", "schedule_days: [0, 7, 3]")
		}, []string{"policy.yaml", "schedule_days[2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := defaultFiles(t)
			tt.change(t, m)
			s, err := templates.LoadFS(m)
			if err == nil {
				t.Fatalf("LoadFS succeeded (version %s), want an error naming %q", s.Version, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func messageData() templates.MessageData {
	return templates.MessageData{
		FirstName:      "Ada",
		Subject:        "  Your payment didn't go through ",
		Message:        "We could not charge your card.",
		AmountDue:      "$49.00",
		PaymentURL:     "https://billing.example.com/invoices/inv_1/pay?t=a&b=c",
		UnsubscribeURL: "https://billing.example.com/customers/cus_1/reminders/unsubscribe",
		Language:       "en",
	}
}

func TestEmail(t *testing.T) {
	s := mustLoadDefault(t)
	d := messageData()
	subject, text, html, err := s.Email(d)
	if err != nil {
		t.Fatalf("Email: %v", err)
	}
	if subject != "Your payment didn't go through" {
		t.Errorf("subject = %q, want it trimmed", subject)
	}
	for _, want := range []string{"Hi Ada,", d.Message, "Amount due: $49.00", d.PaymentURL, d.UnsubscribeURL} {
		if !strings.Contains(text, want) {
			t.Errorf("text body lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"Hi Ada,", `lang="en"`, "Amount due: $49.00",
		`href="https://billing.example.com/invoices/inv_1/pay?t=a&amp;b=c"`, `href="` + d.UnsubscribeURL + `"`} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML body lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(text, "grace period") {
		t.Errorf("text body has an incentive paragraph without an incentive:\n%s", text)
	}
}

func TestEmailGreetingWithoutName(t *testing.T) {
	s := mustLoadDefault(t)
	d := messageData()
	d.FirstName = ""
	_, text, html, err := s.Email(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "Hello,") || strings.Contains(text, "Hi ,") {
		t.Errorf("text greeting without a name:\n%s", text)
	}
	if !strings.Contains(html, "<p>Hello,</p>") {
		t.Errorf("HTML greeting without a name:\n%s", html)
	}
}

func TestEmailIncentive(t *testing.T) {
	s := mustLoadDefault(t)
	d := messageData()
	d.Incentive = "We have extended your grace period by 7 days."
	_, text, html, err := s.Email(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, d.Incentive) || !strings.Contains(html, "<strong>"+d.Incentive+"</strong>") {
		t.Errorf("incentive missing:\n%s\n%s", text, html)
	}
}

func TestEmailHTMLEscapesContent(t *testing.T) {
	s := mustLoadDefault(t)
	d := messageData()
	d.FirstName = `<b onmouseover="x()">Eve</b>`
	d.Message = `Hello <script>alert("pwned")</script> & goodbye`
	d.PaymentURL = "javascript:alert(1)"
	_, _, html, err := s.Email(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<b onmouseover", `href="javascript:`} {
		if strings.Contains(html, bad) {
			t.Errorf("HTML body contains %q unescaped:\n%s", bad, html)
		}
	}
	if !strings.Contains(html, "&lt;script&gt;") || !strings.Contains(html, "&amp; goodbye") {
		t.Errorf("HTML body does not show the escaped message:\n%s", html)
	}
}

func TestSMS(t *testing.T) {
	s := mustLoadDefault(t)
	d := messageData()
	d.Message = "  Your payment\n\nfailed.\t Please   update your card. "
	sms, err := s.SMS(d)
	if err != nil {
		t.Fatalf("SMS: %v", err)
	}
	want := "Your payment failed. Please update your card. Pay: " + d.PaymentURL + " Reply STOP to opt out."
	if sms != want {
		t.Errorf("SMS = %q\nwant %q", sms, want)
	}
	if strings.ContainsAny(sms, "\n\t") || strings.Contains(sms, "  ") {
		t.Errorf("SMS keeps line breaks or double spaces: %q", sms)
	}

	d.Incentive = "Use 10% off within 14 days."
	sms, err = s.SMS(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sms, "update your card. Use 10% off within 14 days. Pay: ") || !strings.HasSuffix(sms, "Reply STOP to opt out.") {
		t.Errorf("SMS with incentive = %q", sms)
	}
}

func TestPrompt(t *testing.T) {
	s := mustLoadDefault(t)
	system, user, err := s.Prompt(templates.PromptData{
		Step: 2, TotalSteps: 4, Plan: "pro", TenureDays: 400, LifetimeValue: "$1,188.00", AmountDue: "$99.00",
		FailureCode: "insufficient_funds", PaymentsSucceeded: 11, PaymentsFailed: 1,
		AllowedChannels: []string{"email", "sms"}, Language: "de-DE", Tones: s.Policy.Tones,
		MaxDiscountPercent: 10, MaxExtensionDays: 14, SMSMaxChars: 200, EmailMaxChars: 1200, SubjectMaxChars: 100,
	})
	if err != nil {
		t.Fatalf("Prompt: %v", err)
	}
	if !strings.Contains(system, "friendly, helpful, firm, urgent") || !strings.Contains(system, "de-DE") {
		t.Errorf("system prompt lacks the tones or the language:\n%s", system)
	}
	for _, want := range []string{"step 2 of 4", "plan: pro", "amount due: $99.00", "allowed channels: email, sms", "insufficient_funds"} {
		if !strings.Contains(user, want) {
			t.Errorf("user prompt lacks %q:\n%s", want, user)
		}
	}
}
