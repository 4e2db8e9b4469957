package policy_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/prompts"
)

func defaultYAML(t *testing.T) []byte {
	t.Helper()
	b, err := fs.ReadFile(prompts.Default, "policy.yaml")
	if err != nil {
		t.Fatalf("read the shipped policy.yaml: %v", err)
	}
	return b
}

// defaultPolicy is the shipped policy.yaml with the shipped guardrails.yaml.
func defaultPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(defaultYAML(t))
	if err != nil {
		t.Fatalf("Parse(prompts/policy.yaml): %v", err)
	}
	p.Guardrails = defaultGuardrails(t)
	return p
}

func defaultGuardrails(t testing.TB) *policy.Guardrails {
	t.Helper()
	b, err := fs.ReadFile(prompts.Default, "guardrails.yaml")
	if err != nil {
		t.Fatalf("read the shipped guardrails.yaml: %v", err)
	}
	g, err := policy.ParseGuardrails(b)
	if err != nil {
		t.Fatalf("ParseGuardrails(prompts/guardrails.yaml): %v", err)
	}
	return g
}

// mutated returns the shipped policy.yaml after mutate changed its decoded form.
func mutated(t *testing.T, mutate func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(defaultYAML(t), &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rule(m map[string]any, i int) map[string]any { return m["rules"].([]any)[i].(map[string]any) }

func TestParseShippedPolicy(t *testing.T) {
	p := defaultPolicy(t)
	if want := []int{0, 3, 7, 14}; !slices.Equal(p.ScheduleDays, want) {
		t.Errorf("ScheduleDays = %v, want %v", p.ScheduleDays, want)
	}
	if want := []time.Duration{0, 72 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour}; !slices.Equal(p.Schedule(), want) {
		t.Errorf("Schedule() = %v, want %v", p.Schedule(), want)
	}
	if want := []string{"friendly", "helpful", "firm", "urgent"}; !slices.Equal(p.Tones, want) {
		t.Errorf("Tones = %v, want %v", p.Tones, want)
	}
	if p.QuietHours.Start != "09:00" || p.QuietHours.End != "20:00" {
		t.Errorf("QuietHours = %+v", p.QuietHours)
	}
	if p.SMSMaxChars != 160 || p.EmailMaxChars != 1200 || p.SubjectMaxChars != 100 || p.OfferValidDays != 14 || p.FinalWaitDays != 3 {
		t.Errorf("limits = %d %d %d %d %d", p.SMSMaxChars, p.EmailMaxChars, p.SubjectMaxChars, p.OfferValidDays, p.FinalWaitDays)
	}
	if len(p.Rules) != 4 {
		t.Errorf("%d rules, want 4", len(p.Rules))
	}
	// The shipped spike section spells out the defaults (what BENCHMARKS.md measured).
	if got, want := fmt.Sprintf("%+v", p.Spike), fmt.Sprintf("%+v", spike.DefaultConfig()); got != want {
		t.Errorf("spike = %s\nwant the defaults %s", got, want)
	}
	// Without the section, the defaults apply.
	noSpike := mutated(t, func(m map[string]any) { delete(m, "spike") })
	if q, err := policy.Parse(noSpike); err != nil || fmt.Sprintf("%+v", q.Spike) != fmt.Sprintf("%+v", spike.DefaultConfig()) {
		t.Errorf("without a spike section: %+v, %v", q, err)
	}
}

func TestCapsFor(t *testing.T) {
	p := defaultPolicy(t)
	tests := []struct {
		plan string
		want policy.Caps
	}{
		{"pro", policy.Caps{MaxDiscountPercent: 10, MaxExtensionDays: 14, DiscountBudgetPerYear: 20, ExtensionBudgetPerYear: 30}},
		{"enterprise", policy.Caps{MaxDiscountPercent: 20, MaxExtensionDays: 30, DiscountBudgetPerYear: 40, ExtensionBudgetPerYear: 60}},
		{"basic", policy.Caps{MaxDiscountPercent: 0, MaxExtensionDays: 7, ExtensionBudgetPerYear: 14}},
		{"startup-2019", policy.Caps{MaxDiscountPercent: 0, MaxExtensionDays: 7, ExtensionBudgetPerYear: 14}}, // not listed: default
		{"", policy.Caps{MaxDiscountPercent: 0, MaxExtensionDays: 7, ExtensionBudgetPerYear: 14}},
	}
	for _, tt := range tests {
		if got := p.CapsFor(tt.plan); got != tt.want {
			t.Errorf("CapsFor(%q) = %+v, want %+v", tt.plan, got, tt.want)
		}
	}
}

func TestParseInvalidPolicies(t *testing.T) {
	tests := []struct {
		name   string
		yaml   func(t *testing.T) []byte
		wanted []string // every one must appear in the error
	}{
		{"unknown key", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["sms_max_char"] = 160 })
		}, []string{"sms_max_char"}},
		{"unknown key in a rule", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 0)["discount"] = 5 })
		}, []string{"discount"}},
		{"not YAML", func(*testing.T) []byte { return []byte("schedule_days: [0, 3\n") }, []string{"policy.yaml"}},
		{"spike: unknown dimension and a long window that is not a multiple", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) {
				sp := m["spike"].(map[string]any)
				sp["dimensions"] = []string{"bin", "planet"}
				sp["long_window"] = "90s"
			})
		}, []string{`spike.dimensions: "planet" is not one of`, "spike.long_window: 1m30s must be a multiple of short_window"}},
		{"spike: unknown key", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["spike"].(map[string]any)["threshold"] = 3 })
		}, []string{"threshold"}},
		{"empty schedule", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["schedule_days"] = []int{} })
		}, []string{"schedule_days:"}},
		{"decreasing schedule", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["schedule_days"] = []int{0, 7, 3} })
		}, []string{"schedule_days[2]"}},
		{"repeated schedule day", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["schedule_days"] = []int{0, 3, 3} })
		}, []string{"schedule_days[2]"}},
		{"negative schedule day", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["schedule_days"] = []int{-1, 3} })
		}, []string{"schedule_days[0]"}},
		{"final wait too long", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["final_wait_days"] = 61 })
		}, []string{"final_wait_days"}},
		{"quiet hours end before start", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["quiet_hours"] = map[string]any{"start": "20:00", "end": "09:00"} })
		}, []string{"quiet_hours: end must be after start"}},
		{"quiet hours equal", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["quiet_hours"] = map[string]any{"start": "09:00", "end": "09:00"} })
		}, []string{"quiet_hours: end must be after start"}},
		{"quiet hours not a clock", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["quiet_hours"] = map[string]any{"start": "9am", "end": "20:00"} })
		}, []string{`quiet_hours.start: "9am" is not HH:MM`}},
		{"quiet hours end missing", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["quiet_hours"] = map[string]any{"start": "09:00"} })
		}, []string{"quiet_hours.end"}},
		{"no tones", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { delete(m, "tones") })
		}, []string{"tones: at least one"}},
		{"tone not in tones for a rule", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 2)["tone"] = "threatening" })
		}, []string{`rules[2].tone: "threatening"`}},
		{"sms limit too small", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["sms_max_chars"] = 10 })
		}, []string{"sms_max_chars"}},
		{"email limit too small", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["email_max_chars"] = 20 })
		}, []string{"email_max_chars"}},
		{"subject limit too small", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["subject_max_chars"] = 5 })
		}, []string{"subject_max_chars"}},
		{"offer validity zero", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["offer_valid_days"] = 0 })
		}, []string{"offer_valid_days"}},
		{"missing plans.default", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { delete(m["plans"].(map[string]any), "default") })
		}, []string{"plans.default: required"}},
		{"discount cap above 100", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) {
				m["plans"].(map[string]any)["pro"] = map[string]any{"max_discount_percent": 150, "max_extension_days": 7}
			})
		}, []string{"plans.pro.max_discount_percent"}},
		{"extension cap negative", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) {
				m["plans"].(map[string]any)["pro"] = map[string]any{"max_discount_percent": 10, "max_extension_days": -1}
			})
		}, []string{"plans.pro.max_extension_days"}},
		{"no rules", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { m["rules"] = []any{} })
		}, []string{"rules: at least one rule"}},
		{"bad incentive kind", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 3)["incentive"] = "free_month" })
		}, []string{`rules[3].incentive: "free_month"`}},
		{"bad rule channel", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 1)["channel"] = "none" })
		}, []string{`rules[1].channel: "none"`}},
		{"rule without subject", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 0)["subject"] = " " })
		}, []string{"rules[0].subject: required"}},
		{"rule message syntax error", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 0)["message"] = "Pay {{.AmountDue" })
		}, []string{"rules[0].message"}},
		{"rule message with a misspelt field", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { rule(m, 1)["message"] = "Please pay {{.Amount}} today." })
		}, []string{"rules[1].message"}},
		{"rule without message", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) { delete(rule(m, 2), "message") })
		}, []string{"rules[2].message: required"}},
		{"several problems", func(t *testing.T) []byte {
			return mutated(t, func(m map[string]any) {
				m["schedule_days"] = []int{3, 1}
				delete(m["plans"].(map[string]any), "default")
				rule(m, 0)["tone"] = "rude"
			})
		}, []string{"schedule_days[1]", "plans.default", "rules[0].tone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Parse(tt.yaml(t))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want an error naming %q", p, tt.wanted)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with its error")
			}
			if !strings.HasPrefix(err.Error(), "policy.yaml: ") {
				t.Errorf("error %q does not name policy.yaml", err)
			}
			for _, w := range tt.wanted {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseAcceptsMidnightEnd(t *testing.T) {
	p, err := policy.Parse(mutated(t, func(m map[string]any) { m["quiet_hours"] = map[string]any{"start": "00:00", "end": "24:00"} }))
	if err != nil {
		t.Fatalf("Parse with quiet hours 00:00-24:00: %v", err)
	}
	now := time.Date(2026, 6, 1, 23, 30, 0, 0, time.UTC)
	if got := p.QuietHours.NextAllowed(now, time.UTC); !got.Equal(now) {
		t.Errorf("NextAllowed(23:30) with an all-day window = %v, want now", got)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s: %v", name, err)
	}
	return loc
}

func TestNextAllowed(t *testing.T) {
	q := defaultPolicy(t).QuietHours // 09:00-20:00
	ny, tokyo, berlin := mustZone(t, "America/New_York"), mustZone(t, "Asia/Tokyo"), mustZone(t, "Europe/Berlin")
	tests := []struct {
		name string
		now  time.Time
		loc  *time.Location
		want time.Time // zero: now
	}{
		{"inside the window", time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC), time.UTC, time.Time{}},
		{"at the start", time.Date(2026, 6, 10, 9, 0, 0, 0, time.UTC), time.UTC, time.Time{}},
		{"just before the end", time.Date(2026, 6, 10, 19, 59, 59, 0, time.UTC), time.UTC, time.Time{}},
		{"before the start", time.Date(2026, 6, 10, 6, 30, 0, 0, time.UTC), time.UTC, time.Date(2026, 6, 10, 9, 0, 0, 0, time.UTC)},
		{"at the end", time.Date(2026, 6, 10, 20, 0, 0, 0, time.UTC), time.UTC, time.Date(2026, 6, 11, 9, 0, 0, 0, time.UTC)},
		{"after the end", time.Date(2026, 6, 10, 22, 15, 0, 0, time.UTC), time.UTC, time.Date(2026, 6, 11, 9, 0, 0, 0, time.UTC)},
		{"after the end on new year's eve", time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.UTC, time.Date(2027, 1, 1, 9, 0, 0, 0, time.UTC)},
		{"nil location is UTC", time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC), nil, time.Date(2026, 6, 10, 9, 0, 0, 0, time.UTC)},
		// 14:00 UTC is 10:00 in New York (EDT) but 23:00 in Tokyo.
		{"New York, inside", time.Date(2026, 6, 10, 14, 0, 0, 0, time.UTC), ny, time.Time{}},
		{"Tokyo, same instant, after the end", time.Date(2026, 6, 10, 14, 0, 0, 0, time.UTC), tokyo,
			time.Date(2026, 6, 11, 9, 0, 0, 0, tokyo)},
		// 02:00 UTC is 22:00 the day before in New York and 11:00 in Tokyo.
		{"New York, late evening", time.Date(2026, 6, 10, 2, 0, 0, 0, time.UTC), ny, time.Date(2026, 6, 10, 9, 0, 0, 0, ny)},
		{"Tokyo, inside", time.Date(2026, 6, 10, 2, 0, 0, 0, time.UTC), tokyo, time.Time{}},
		{"now given in another zone", time.Date(2026, 6, 10, 7, 0, 0, 0, berlin), ny, time.Date(2026, 6, 10, 9, 0, 0, 0, ny)},
		// DST begins in New York on 2026-03-08 at 02:00 (EST -> EDT): 09:00 local is 13:00 UTC.
		{"New York DST start day, after midnight", time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC), ny, time.Date(2026, 3, 8, 13, 0, 0, 0, time.UTC)},
		{"New York the evening before DST", time.Date(2026, 3, 8, 2, 0, 0, 0, time.UTC), ny, time.Date(2026, 3, 8, 13, 0, 0, 0, time.UTC)},
		// DST ends in New York on 2026-11-01 at 02:00 (EDT -> EST): 09:00 local is 14:00 UTC.
		{"New York DST end day", time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC), ny, time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC)},
		// Berlin's DST starts on 2026-03-29 at 02:00 local: 09:00 CEST is 07:00 UTC.
		{"Berlin DST start day", time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), berlin, time.Date(2026, 3, 29, 7, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := q.NextAllowed(tt.now, tt.loc)
			want := tt.want
			if want.IsZero() {
				want = tt.now
			}
			if !got.Equal(want) {
				t.Errorf("NextAllowed(%v, %v) = %v, want %v", tt.now, tt.loc, got, want)
			}
			if got.Before(tt.now) {
				t.Errorf("NextAllowed(%v) = %v is before now", tt.now, got)
			}
			loc := tt.loc
			if loc == nil {
				loc = time.UTC
			}
			if local := got.In(loc); local.Hour() < 9 || local.Hour() >= 20 {
				t.Errorf("NextAllowed(%v) = %v, %s local: outside 09:00-20:00", tt.now, got, local.Format("15:04"))
			}
		})
	}
}

func TestNextAllowedWallClockOnDSTDay(t *testing.T) {
	q := defaultPolicy(t).QuietHours
	ny := mustZone(t, "America/New_York")
	got := q.NextAllowed(time.Date(2026, 3, 8, 0, 30, 0, 0, ny), ny).In(ny)
	if got.Format("2006-01-02 15:04 MST") != "2026-03-08 09:00 EDT" {
		t.Errorf("NextAllowed on the DST day = %s, want 2026-03-08 09:00 EDT", got.Format("2006-01-02 15:04 MST"))
	}
}

func TestNextAllowedWhenMidnightDoesNotExist(t *testing.T) {
	// Chile moves its clocks from 24:00 to 01:00 on 2026-09-06: that day has no midnight.
	q := defaultPolicy(t).QuietHours
	scl := mustZone(t, "America/Santiago")
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{time.Date(2026, 9, 6, 4, 30, 0, 0, scl), "2026-09-06 09:00"},
		{time.Date(2026, 9, 5, 21, 0, 0, 0, scl), "2026-09-06 09:00"},
		{time.Date(2026, 9, 6, 20, 30, 0, 0, scl), "2026-09-07 09:00"},
	} {
		if got := q.NextAllowed(tt.now, scl).In(scl).Format("2006-01-02 15:04"); got != tt.want {
			t.Errorf("NextAllowed(%v) = %s local, want %s", tt.now, got, tt.want)
		}
	}
}

func TestSchema(t *testing.T) {
	p := defaultPolicy(t)
	var s struct {
		Type                 string   `json:"type"`
		AdditionalProperties *bool    `json:"additionalProperties"`
		Required             []string `json:"required"`
		Properties           map[string]struct {
			Type                 string   `json:"type"`
			Enum                 []string `json:"enum"`
			AdditionalProperties *bool    `json:"additionalProperties"`
			Required             []string `json:"required"`
			Properties           map[string]struct {
				Type string   `json:"type"`
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"properties"`
	}
	raw := p.Schema()
	if !json.Valid(raw) {
		t.Fatalf("Schema() is not valid JSON: %s", raw)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != "object" || s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Errorf("top level: type %q, additionalProperties %v; want object, false", s.Type, s.AdditionalProperties)
	}
	fields := []string{"channel", "tone", "incentive", "subject", "message", "rationale"}
	if !slices.Equal(s.Required, fields) {
		t.Errorf("required = %v, want %v (strict mode requires every property)", s.Required, fields)
	}
	if len(s.Properties) != len(fields) {
		t.Errorf("properties = %v, want exactly %v", s.Properties, fields)
	}
	if got := s.Properties["tone"].Enum; !slices.Equal(got, p.Tones) {
		t.Errorf("tone enum = %v, want the policy's tones %v", got, p.Tones)
	}
	if got := s.Properties["channel"].Enum; !slices.Equal(got, []string{"email", "sms", "none"}) {
		t.Errorf("channel enum = %v", got)
	}
	inc := s.Properties["incentive"]
	if inc.Type != "object" || inc.AdditionalProperties == nil || *inc.AdditionalProperties || !slices.Equal(inc.Required, []string{"kind", "value"}) {
		t.Errorf("incentive = %+v; want a closed object requiring kind and value", inc)
	}
	if got := inc.Properties["kind"].Enum; !slices.Equal(got, []string{"none", "discount_percent", "extension_days"}) {
		t.Errorf("incentive kind enum = %v", got)
	}
	if inc.Properties["value"].Type != "integer" {
		t.Errorf("incentive value type = %q, want integer", inc.Properties["value"].Type)
	}

	// The tones enum follows the policy file.
	p2, err := policy.Parse(mutated(t, func(m map[string]any) {
		m["tones"] = []string{"friendly", "helpful", "firm", "urgent", "playful"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p2.Schema()), `"playful"`) {
		t.Errorf("Schema() of a policy with tone playful lacks it: %s", p2.Schema())
	}
}

func TestVariantForIsStableAndWeighted(t *testing.T) {
	p := defaultPolicy(t)
	counts := map[string]int{}
	for i := range 2000 {
		id := "cus_" + strconv.Itoa(i)
		v := p.VariantFor(id)
		if v != p.VariantFor(id) {
			t.Fatalf("%s got two variants", id)
		}
		counts[v]++
	}
	if len(counts) != 2 || counts["control"] < 800 || counts["empathetic"] < 800 {
		t.Fatalf("variants over 2000 customers = %v, want both near 1000 (weights 50/50)", counts)
	}
}
