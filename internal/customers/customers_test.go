package customers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/customers"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

var now = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func TestParseCSV(t *testing.T) {
	in := "\ufeffcustomer_id, name,email,phone,locale,time_zone,plan,lifetime_value_minor,email_consent,sms_consent,customer_since,updated_at\n" +
		"cus_1,Ada Lovelace, ada@example.com ,+1 (415) 555-2671,en-US,America/New_York,pro,118800,true,false,2024-01-15,2026-11-01T08:00:00Z\n" +
		`cus_2,"Hopper, Grace",,+44 20 7946 0958,en-GB,Europe/London,,,FALSE,1,2023-06-01T12:30:00+02:00,` + "\n"
	cs, err := customers.Parse(strings.NewReader(in), "csv", now)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cs) != 2 {
		t.Fatalf("got %d customers, want 2", len(cs))
	}
	a, g := cs[0], cs[1]
	if a.CustomerID != "cus_1" || a.Name != "Ada Lovelace" || a.Email != "ada@example.com" || a.Phone != "+14155552671" ||
		a.Locale != "en-US" || a.TimeZone != "America/New_York" || a.Plan != "pro" || a.LifetimeValueMinor != 118800 {
		t.Errorf("customer 1 = %+v", a)
	}
	if !a.EmailConsent || a.SMSConsent || a.EmailConsentSet == nil || !*a.EmailConsentSet || a.SMSConsentSet == nil || *a.SMSConsentSet {
		t.Errorf("customer 1 consents = %v/%v, set %v/%v; want email only, both set", a.EmailConsent, a.SMSConsent, a.EmailConsentSet, a.SMSConsentSet)
	}
	if !a.CustomerSince.Equal(time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("customer 1 customer_since = %v, want 2024-01-15", a.CustomerSince)
	}
	if !a.UpdatedAt.Equal(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("customer 1 updated_at = %v", a.UpdatedAt)
	}
	if g.Name != "Hopper, Grace" || g.Email != "" || g.Phone != "+442079460958" || g.Plan != "" || g.LifetimeValueMinor != 0 {
		t.Errorf("customer 2 = %+v", g)
	}
	if g.EmailConsent || !g.SMSConsent || g.SMSConsentSet == nil || !*g.SMSConsentSet {
		t.Errorf("customer 2 consents = %v/%v, want sms only", g.EmailConsent, g.SMSConsent)
	}
	if !g.CustomerSince.Equal(time.Date(2023, 6, 1, 10, 30, 0, 0, time.UTC)) {
		t.Errorf("customer 2 customer_since = %v", g.CustomerSince)
	}
	if !g.UpdatedAt.Equal(now) {
		t.Errorf("customer 2 updated_at = %v, want now (%v) when the column is empty", g.UpdatedAt, now)
	}
}

func TestParseCSVColumnsInAnyOrder(t *testing.T) {
	in := "sms_consent,customer_id\ntrue,cus_9\n"
	cs, err := customers.Parse(strings.NewReader(in), "csv", now)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cs) != 1 || cs[0].CustomerID != "cus_9" || !cs[0].SMSConsent || cs[0].EmailConsent {
		t.Errorf("Parse = %+v", cs)
	}
}

func TestParseJSONL(t *testing.T) {
	in := `{"customer_id":"cus_1","name":" Ada ","email":"ada@example.com","phone":"+14155552671","locale":"de-DE","time_zone":"Europe/Berlin","plan":"enterprise","lifetime_value_minor":5000,"email_consent":true,"sms_consent":true,"customer_since":"2025-02-28"}

{"customer_id":"cus_2","updated_at":"2026-10-01T00:00:00Z"}
`
	cs, err := customers.Parse(strings.NewReader(in), "jsonl", now)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cs) != 2 {
		t.Fatalf("got %d customers, want 2", len(cs))
	}
	a := cs[0]
	if a.CustomerID != "cus_1" || a.Name != "Ada" || a.Phone != "+14155552671" || a.Locale != "de-DE" || a.Plan != "enterprise" ||
		a.LifetimeValueMinor != 5000 || !a.EmailConsent || !a.SMSConsent || !a.UpdatedAt.Equal(now) {
		t.Errorf("customer 1 = %+v", a)
	}
	if !a.CustomerSince.Equal(time.Date(2025, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("customer_since = %v, want 2025-02-28", a.CustomerSince)
	}
	b := cs[1]
	if b.EmailConsent || b.SMSConsent || !b.UpdatedAt.Equal(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("customer 2 = %+v", b)
	}
	if b.EmailConsentSet != nil || b.SMSConsentSet != nil {
		t.Errorf("customer 2 without consent keys has consents set %v/%v; want nil (keep the stored ones)", b.EmailConsentSet, b.SMSConsentSet)
	}
}

func TestImportWithoutConsentColumnsKeepsConsent(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	first := "customer_id,email,email_consent,sms_consent,updated_at\ncus_1,ada@example.com,true,true,2026-11-01T00:00:00Z\n"
	cs, err := customers.Parse(strings.NewReader(first), "csv", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := customers.Import(ctx, st, cs); err != nil {
		t.Fatal(err)
	}
	// A later file that only changes plans (no consent columns, or empty consent cells)
	// must not withdraw consent.
	for _, tt := range []struct{ format, in string }{
		{"csv", "customer_id,plan\ncus_1,pro\n"},
		{"csv", "customer_id,plan,email_consent,sms_consent\ncus_1,enterprise,,\n"},
		{"jsonl", `{"customer_id":"cus_1","plan":"basic","sms_consent":null}`},
	} {
		cs, err := customers.Parse(strings.NewReader(tt.in), tt.format, now)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := customers.Import(ctx, st, cs); err != nil || n != 1 {
			t.Fatalf("Import(%q) = %d, %v", tt.in, n, err)
		}
		c, err := st.GetCustomer(ctx, "cus_1")
		if err != nil {
			t.Fatal(err)
		}
		if !c.EmailConsent || !c.SMSConsent {
			t.Errorf("after importing %q: consents %v/%v, want both kept", tt.in, c.EmailConsent, c.SMSConsent)
		}
	}
	// An explicit false withdraws it.
	cs, err = customers.Parse(strings.NewReader(`{"customer_id":"cus_1","sms_consent":false}`), "jsonl", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := customers.Import(ctx, st, cs); err != nil {
		t.Fatal(err)
	}
	if c, err := st.GetCustomer(ctx, "cus_1"); err != nil || !c.EmailConsent || c.SMSConsent {
		t.Errorf("after withdrawing SMS consent: %+v, %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	header := "customer_id,email,phone,time_zone,locale,lifetime_value_minor,email_consent,sms_consent,customer_since,updated_at\n"
	tests := []struct {
		name, format, in string
		want             []string // every one must appear in the error
	}{
		{"unknown format", "xml", "", []string{`format "xml"`}},
		{"empty CSV", "csv", "", []string{"line 1", "header"}},
		{"unknown column", "csv", "customer_id,nickname\ncus_1,Ada\n", []string{"line 1", `unknown column "nickname"`}},
		{"missing customer_id column", "csv", "name,email\nAda,ada@example.com\n", []string{"line 1", "customer_id column is required"}},
		{"empty customer_id", "csv", header + ",,,,,,,,,\n", []string{"line 2", "customer_id: required"}},
		{"customer_id is an email address", "csv", header + "ada@example.com,,,,,,,,,\n", []string{"line 2", "customer_id:"}},
		{"customer_id with a space", "jsonl", `{"customer_id":"cus 1"}`, []string{"line 1", "customer_id:"}},
		{"bad email", "csv", header + "cus_1,not-an-email,,,,,,,,\n", []string{"line 2", `customer "cus_1"`, "email: not a valid email address"}},
		{"phone without +", "csv", header + "cus_1,,4155552671,,,,,,,\n", []string{"line 2", "phone:", "E.164"}},
		{"invalid phone", "csv", header + "cus_1,,+1 555,,,,,,,\n", []string{"line 2", "phone: not a valid phone number"}},
		{"bad time zone", "csv", header + "cus_1,,,Moon/Base,,,,,,\n", []string{"line 2", `time_zone: "Moon/Base"`}},
		{"bad locale", "csv", header + "cus_1,,,,english please,,,,,\n", []string{"line 2", "locale:"}},
		{"bad int", "csv", header + "cus_1,,,,,12.50,,,,\n", []string{"line 2", `lifetime_value_minor: "12.50" is not an integer`}},
		{"negative int", "csv", header + "cus_1,,,,,-5,,,,\n", []string{"line 2", "lifetime_value_minor: must not be negative"}},
		{"bad bool", "csv", header + "cus_1,,,,,,yes,,,\n", []string{"line 2", `email_consent: "yes" is not true or false`}},
		{"two bad bools in order", "csv", header + "cus_1,,,,,,yes,no,,\n", []string{
			`line 2: email_consent: "yes" is not true or false; sms_consent: "no" is not true or false`}},
		{"bad customer_since", "csv", header + "cus_1,,,,,,,,15/01/2024,\n", []string{"line 2", `customer_since: "15/01/2024"`}},
		{"bad updated_at", "csv", header + "cus_1,,,,,,,,,yesterday\n", []string{"line 2", `updated_at: "yesterday"`}},
		{"wrong number of fields", "csv", header + "cus_1,,\n", []string{"line 2"}},
		{"bare quote", "csv", header + "cus_1,a\"b,,,,,,,,\n", []string{"line 2"}},
		{"JSONL unknown field", "jsonl", `{"customer_id":"cus_1","nickname":"Ada"}`, []string{"line 1", "nickname"}},
		{"JSONL bool as string", "jsonl", `{"customer_id":"cus_1","sms_consent":"true"}`, []string{"line 1", "sms_consent"}},
		{"JSONL int as string", "jsonl", `{"customer_id":"cus_1","lifetime_value_minor":"100"}`, []string{"line 1", "lifetime_value_minor"}},
		{"JSONL not JSON", "jsonl", "customer_id=cus_1", []string{"line 1"}},
		{"JSONL two objects on a line", "jsonl", `{"customer_id":"cus_1"} {"customer_id":"cus_2"}`, []string{"line 1", "unexpected data"}},
		{"JSONL missing customer_id", "jsonl", `{"name":"Ada"}`, []string{"line 1", "customer_id: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := customers.Parse(strings.NewReader(tt.in), tt.format, now)
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want an error", cs)
			}
			if cs != nil {
				t.Errorf("Parse returned %d customers with its error, want none", len(cs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseBadRowRejectsTheWholeFile(t *testing.T) {
	in := "customer_id,email,sms_consent\n" +
		"cus_1,ada@example.com,true\n" +
		"cus_2,grace@example,maybe\n" +
		"cus_3,linus@example.com,false\n" +
		"cus_4,bad address,false\n"
	cs, err := customers.Parse(strings.NewReader(in), "csv", now)
	if err == nil || cs != nil {
		t.Fatalf("Parse = %d customers, %v; want nothing and an error", len(cs), err)
	}
	msg := err.Error()
	for _, w := range []string{"line 3", "sms_consent", "line 5", `customer "cus_4": email`} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	for _, ok := range []string{"line 2", "line 4"} {
		if strings.Contains(msg, ok) {
			t.Errorf("error %q blames the valid %s", msg, ok)
		}
	}

	jsonl := "{\"customer_id\":\"cus_1\"}\n\n{\"customer_id\":\"cus_2\",\"phone\":\"555\"}\n"
	if _, err := customers.Parse(strings.NewReader(jsonl), "jsonl", now); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("JSONL error = %v, want it on line 3 (blank lines count)", err)
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	in := "customer_id,name,email,sms_consent,updated_at\n" +
		"cus_1,Ada,ada@example.com,true,2026-11-01T00:00:00Z\n" +
		"cus_2,Grace,grace@example.com,false,2026-11-01T00:00:00Z\n"
	cs, err := customers.Parse(strings.NewReader(in), "csv", now)
	if err != nil {
		t.Fatal(err)
	}
	n, err := customers.Import(ctx, st, cs)
	if err != nil || n != 2 {
		t.Fatalf("Import = %d, %v; want 2", n, err)
	}
	// An older export changes nothing.
	older := strings.ReplaceAll(in, "2026-11-01", "2026-10-01")
	older = strings.ReplaceAll(older, "Ada,", "Ada Old,")
	cs, err = customers.Parse(strings.NewReader(older), "csv", now)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := customers.Import(ctx, st, cs); err != nil || n != 0 {
		t.Errorf("Import of an older export = %d, %v; want 0", n, err)
	}
	c, err := st.GetCustomer(ctx, "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Ada" || c.Email != "ada@example.com" || !c.SMSConsent || c.EmailConsent {
		t.Errorf("imported customer = %+v", c)
	}
}

func countRows(t *testing.T, st *postgres.Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"customers", "events", "payment_attempts", "invoices", "dunning_runs"} {
		var n int
		if err := st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	n, err := customers.Seed(ctx, st, now)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if n != customers.SeedCount {
		t.Errorf("Seed = %d, want SeedCount %d", n, customers.SeedCount)
	}
	counts := countRows(t, st)
	if counts["customers"] != customers.SeedCount {
		t.Errorf("%d customers, want %d", counts["customers"], customers.SeedCount)
	}
	if counts["invoices"] != 12*customers.SeedCount {
		t.Errorf("%d invoices, want a year of monthly invoices (%d)", counts["invoices"], 12*customers.SeedCount)
	}
	if counts["payment_attempts"] <= counts["invoices"] || counts["dunning_runs"] == 0 {
		t.Errorf("counts = %v; want some failed and recovered payments with their dunning runs", counts)
	}
	if counts["dunning_runs"] != counts["payment_attempts"]-counts["invoices"] {
		t.Errorf("counts = %v; want one earlier run for every failed payment", counts)
	}

	plans, locales, zones := map[string]bool{}, map[string]bool{}, map[string]bool{}
	consents := map[[2]bool]bool{}
	for i := 1; i <= customers.SeedCount; i++ {
		want := customers.SeedCustomer(i, now)
		h, err := st.CustomerHistory(ctx, want.CustomerID)
		if err != nil {
			t.Fatalf("CustomerHistory(%s): %v", want.CustomerID, err)
		}
		c := h.Customer
		if c.Name != want.Name || c.Email != want.Email || c.Phone != want.Phone || c.Plan != want.Plan ||
			c.EmailConsent != want.EmailConsent || c.SMSConsent != want.SMSConsent {
			t.Errorf("stored %+v\nwant %+v", c, want)
		}
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			t.Errorf("%s has time zone %q: %v", c.CustomerID, c.TimeZone, err)
		}
		if e164, err := events.NormalizePhone(c.Phone); err != nil || e164 != c.Phone {
			t.Errorf("%s phone %q is not a valid E.164 number (%q, %v): its SMS would be rejected", c.CustomerID, c.Phone, e164, err)
		}
		if len(h.Payments) < 12 {
			t.Errorf("%s has %d payments, want at least 12", c.CustomerID, len(h.Payments))
		}
		for j := 1; j < len(h.Payments); j++ {
			if h.Payments[j].OccurredAt.After(h.Payments[j-1].OccurredAt) {
				t.Errorf("%s payments not newest first", c.CustomerID)
				break
			}
		}
		plans[c.Plan], locales[c.Locale], zones[c.TimeZone] = true, true, true
		consents[[2]bool{c.EmailConsent, c.SMSConsent}] = true
	}
	if len(plans) < 3 || len(locales) < 3 || len(zones) < 3 || len(consents) < 3 {
		t.Errorf("seed data is not varied: plans %v, locales %v, zones %v, consents %v", plans, locales, zones, consents)
	}

	// Idempotent: again now, and again on a later day.
	for _, at := range []time.Time{now, now.Add(24 * time.Hour)} {
		if _, err := customers.Seed(ctx, st, at); err != nil {
			t.Fatalf("Seed again at %v: %v", at, err)
		}
		if again := countRows(t, st); !equalCounts(again, counts) {
			t.Errorf("after seeding again at %v: counts %v, want %v", at, again, counts)
		}
	}
	var undelivered int
	if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM events WHERE delivered_at IS NULL").Scan(&undelivered); err != nil {
		t.Fatal(err)
	}
	if undelivered != 0 {
		t.Errorf("%d seeded events are left undelivered: the worker would deliver history as live events", undelivered)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSeedCustomerIsDeterministic(t *testing.T) {
	for i := 1; i <= customers.SeedCount; i++ {
		a, b := customers.SeedCustomer(i, now), customers.SeedCustomer(i, now)
		if a.CustomerID != b.CustomerID || a.Name != b.Name || a.Phone != b.Phone || a.Plan != b.Plan {
			t.Fatalf("SeedCustomer(%d) differs between calls", i)
		}
		if a.EmailConsentSet == nil || a.SMSConsentSet == nil || *a.EmailConsentSet != a.EmailConsent || *a.SMSConsentSet != a.SMSConsent {
			t.Errorf("SeedCustomer(%d) consents not set for the upsert: %+v", i, a)
		}
	}
}
