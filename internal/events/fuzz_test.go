package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/events"
)

// FuzzDecode checks that Decode never panics, refuses with a *ValidationError whose problems
// are "field: message" lines, and that what it accepts is complete and decodes again, from
// Raw, to the same event. Seeds: testdata/fuzz/FuzzDecode (every contract fixture and the
// edge cases below; regenerate with -update-fuzz-seeds).
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./internal/events/
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := events.Decode(data)
		if err != nil {
			var ve *events.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Decode error %T %v is not a *ValidationError with problems", err, err)
			}
			for _, p := range ve.Problems {
				if !strings.Contains(p, ": ") || strings.ContainsAny(p, "\n\r") {
					t.Fatalf("problem %q is not one \"field: message\" line", p)
				}
			}
			if !reflect.DeepEqual(ev, events.Event{}) {
				t.Fatalf("Decode returned a half-filled event with its error: %+v", ev)
			}
			if _, again := events.Decode(data); again == nil || again.Error() != err.Error() {
				t.Fatalf("Decode is not deterministic: %v, then %v", err, again)
			}
			return
		}
		if ev.EventID == "" || ev.InvoiceID == "" || !slices.Contains(events.Types, ev.Type) {
			t.Fatalf("accepted an incomplete event: %+v", ev)
		}
		if !events.ValidID(ev.EventID) || !events.ValidID(ev.InvoiceID) ||
			(ev.CustomerID != "" && !events.ValidID(ev.CustomerID)) || (ev.AttemptID != "" && !events.ValidID(ev.AttemptID)) {
			t.Fatalf("accepted an id outside the id alphabet: %+v", ev)
		}
		if ev.OccurredAt.Location() != time.UTC {
			t.Fatalf("OccurredAt %v is not in UTC", ev.OccurredAt)
		}
		switch ev.Type {
		case recoup.EventPaymentFailed:
			if ev.CustomerID == "" || ev.AmountMinor <= 0 || len(ev.Currency) != 3 {
				t.Fatalf("accepted an incomplete payment.failed: %+v", ev)
			}
		case recoup.EventOptOut:
			if !ev.Channel.Valid() {
				t.Fatalf("accepted an opt-out of channel %q", ev.Channel)
			}
		}
		if ev.Customer != nil && ev.Type != recoup.EventPaymentFailed {
			t.Fatalf("a %s event carries a customer snapshot", ev.Type)
		}
		if !json.Valid(ev.Raw) || len(ev.Raw) > len(data) {
			t.Fatalf("Raw %q is not the compacted input", ev.Raw)
		}
		again, err := events.Decode(ev.Raw)
		if err != nil {
			t.Fatalf("Decode(Raw) of an accepted event: %v\nRaw: %s", err, ev.Raw)
		}
		if !again.OccurredAt.Equal(ev.OccurredAt) {
			t.Fatalf("OccurredAt %v, then %v from Raw", ev.OccurredAt, again.OccurredAt)
		}
		again.OccurredAt, ev.OccurredAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("Decode(Raw) differs:\n%+v\n%+v", ev, again)
		}
	})
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpus testdata/fuzz/FuzzDecode from the fixtures and edge cases")

const seedDir = "testdata/fuzz/FuzzDecode"

// edgeSeeds are inputs a fuzzer would take long to build from the fixtures.
func edgeSeeds() map[string][]byte {
	const base = `"event_id":"evt_1","invoice_id":"in_1","occurred_at":"2026-11-29T10:00:00Z"`
	pf := func(extra string) []byte {
		return []byte(`{"type":"payment.failed",` + base + `,"customer_id":"cus_1","amount_minor":4900,"currency":"USD"` + extra + `}`)
	}
	amount := func(n string) []byte {
		return []byte(`{"type":"payment.failed",` + base + `,"customer_id":"cus_1","amount_minor":` + n + `,"currency":"USD"}`)
	}
	cancel := func(extra string) []byte { return []byte(`{"type":"dunning.cancel",` + base + extra + `}`) }
	customer := func(c string) []byte { return pf(`,"customer":{` + c + `}`) }
	return map[string][]byte{
		"edge-empty":                   {},
		"edge-null":                    []byte("null"),
		"edge-empty-array":             []byte("[]"),
		"edge-string":                  []byte(`"payment.failed"`),
		"edge-empty-object":            []byte("{}"),
		"edge-type-only":               []byte(`{"type":"payment.failed"}`),
		"edge-type-null":               []byte(`{"type":null,"event_id":"e1"}`),
		"edge-type-padded":             []byte(`{"type":"\t dunning.cancel \n",` + base + `}`),
		"edge-type-case":               []byte(`{"type":"Payment.Failed",` + base + `}`),
		"edge-key-case":                []byte(`{"Type":"dunning.cancel",` + base + `}`),
		"edge-duplicate-type":          []byte(`{"type":"payment.failed","type":"dunning.cancel",` + base + `}`),
		"edge-duplicate-event-id":      cancel(`,"event_id":"evt_2"`),
		"edge-bom":                     append([]byte("\xef\xbb\xbf"), cancel("")...),
		"edge-invalid-utf8":            cancel(`,"reason":"caf` + "\xe9" + `"`),
		"edge-nul-escape":              cancel(`,"reason":"a\u0000b"`),
		"edge-lone-surrogate":          cancel(`,"reason":"\ud800"`),
		"edge-surrogate-pair":          cancel(`,"reason":"\ud83d\ude00 \u00e9\\u0000"`),
		"edge-escaped-id":              []byte(`{"type":"dunning.cancel","event_id":"evt\u005f1","invoice_id":"in_1","occurred_at":"2026-11-29T10:00:00Z"}`),
		"edge-whitespace-around":       append(append([]byte("\n\t "), cancel("")...), " \r\n"...),
		"edge-trailing-comma":          []byte(`{"type":"dunning.cancel",` + base + `,}`),
		"edge-trailing-garbage":        append(cancel(""), "x"...),
		"edge-deep-nesting":            cancel(`,"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000)),
		"edge-too-deep":                cancel(`,"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001)),
		"edge-amount-huge-exponent":    amount("1e9999999"),
		"edge-amount-big-exponent":     amount("1e999"),
		"edge-amount-tiny":             amount("1e-999"),
		"edge-amount-exponent-integer": amount("4.9e3"),
		"edge-amount-negative-zero":    amount("-0"),
		"edge-amount-int64-max":        amount("9223372036854775807"),
		"edge-amount-int64-overflow":   amount("9223372036854775808"),
		"edge-amount-many-digits":      amount(strings.Repeat("9", 1200)),
		"edge-amount-null":             amount("null"),
		"edge-amount-bool":             amount("true"),
		"edge-nested-huge-number":      cancel(`,"x":{"y":[1e99999999]}`),
		"edge-occurred-leap-second":    []byte(`{"type":"dunning.cancel","event_id":"e1","invoice_id":"i1","occurred_at":"2026-12-31T23:59:60Z"}`),
		"edge-occurred-offset-24":      []byte(`{"type":"dunning.cancel","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00+24:00"}`),
		"edge-occurred-long-fraction":  []byte(`{"type":"dunning.cancel","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00.123456789123Z"}`),
		"edge-occurred-year-zero":      []byte(`{"type":"dunning.cancel","event_id":"e1","invoice_id":"i1","occurred_at":"0000-01-01T00:00:00Z"}`),
		"edge-occurred-comma-fraction": []byte(`{"type":"dunning.cancel","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00,5Z"}`),
		"edge-id-128":                  []byte(`{"type":"dunning.cancel","event_id":"` + strings.Repeat("e", 128) + `","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00Z"}`),
		"edge-id-unicode-digit":        []byte(`{"type":"dunning.cancel","event_id":"evt_١","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00Z"}`),
		"edge-customer-null-on-cancel": cancel(`,"customer":null`),
		"edge-customer-array":          pf(`,"customer":[]`),
		"edge-customer-empty":          customer(""),
		"edge-phone-vanity":            customer(`"phone":"+1-800-FLOWERS"`),
		"edge-phone-extension":         customer(`"phone":"+1 415 555 2671 ext. 12"`),
		"edge-phone-fullwidth-digits":  customer(`"phone":"+１ ４１５ ５５５ ２６７１"`),
		"edge-phone-padded":            customer(`"phone":"  +44 20 7946 0958  "`),
		"edge-phone-only-plus":         customer(`"phone":"+"`),
		"edge-email-unicode":           customer(`"email":"zoë@example.com"`),
		"edge-email-ip-literal":        customer(`"email":"ada@[127.0.0.1]"`),
		"edge-email-254":               customer(`"email":"` + strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + `.com"`),
		"edge-email-padded-empty":      customer(`"email":"   "`),
		"edge-locale-underscore":       customer(`"locale":"en_US"`),
		"edge-locale-private-use":      customer(`"locale":"x-klingon"`),
		"edge-time-zone-etc":           customer(`"time_zone":"Etc/GMT+5"`),
		"edge-time-zone-traversal":     customer(`"time_zone":"Europe/../../etc/passwd"`),
		"edge-name-200-runes":          customer(`"name":"` + strings.Repeat("ä", 200) + `"`),
		"edge-opt-out-none":            []byte(`{"type":"dunning.opt_out",` + base + `,"channel":"none"}`),
		"edge-opt-out-padded":          []byte(`{"type":"dunning.opt_out",` + base + `,"channel":" sms "}`),
		"edge-many-unknown-fields":     cancel(strings.Repeat(`,"x":1`, 3) + `,"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18,"s":19,"t":20,"u":21,"v":22,"w":23,"y":24,"z":25,"A":26,"B":27`),
		"edge-hostile-field-name":      cancel(`,"x\ninvoice_id: required":1`),
	}
}

// fixtureSeeds are every contract fixture (valid, lenient and invalid).
func fixtureSeeds(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/v1/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out["fixture-"+filepath.Base(filepath.Dir(f))+"-"+strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

func seedFile(data []byte) []byte { return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data) }

// TestFuzzSeedCorpus keeps the committed seed corpus in step with the fixtures and edge
// cases. Other files there (crashers the fuzzer found) stay as regression seeds.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := fixtureSeeds(t)
	for name, data := range edgeSeeds() {
		seeds[name] = data
	}
	if *updateFuzzSeeds {
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range seeds {
		path := filepath.Join(seedDir, name)
		if *updateFuzzSeeds {
			if err := os.WriteFile(path, seedFile(data), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, seedFile(data)) {
			t.Errorf("seed %s is missing or stale; run go test ./internal/events/ -run TestFuzzSeedCorpus -update-fuzz-seeds", path)
		}
	}
}
