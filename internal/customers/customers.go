// Package customers imports customer profiles and consents from CSV or JSON lines, and
// generates the demo data set. Every row is validated before anything is written (text
// fields with the limits of a payment.failed snapshot) and written in one transaction: a
// file with a bad row, or one PostgreSQL refuses, imports nothing and the error names the
// row and field at fault.
package customers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// Record is one profile as imported. Columns (CSV header) and keys (JSON) are the json tags.
type Record struct {
	CustomerID         string `json:"customer_id"`
	Name               string `json:"name"`
	Email              string `json:"email"`
	Phone              string `json:"phone"`
	Locale             string `json:"locale"`
	TimeZone           string `json:"time_zone"`
	Plan               string `json:"plan"`
	LifetimeValueMinor int64  `json:"lifetime_value_minor"`
	// A consent left out (no column, an empty cell, no key or null) keeps the stored one;
	// a new customer has none.
	EmailConsent  *bool  `json:"email_consent"`
	SMSConsent    *bool  `json:"sms_consent"`
	CustomerSince string `json:"customer_since"` // RFC 3339 date-time or YYYY-MM-DD, optional
	UpdatedAt     string `json:"updated_at"`     // RFC 3339; newest wins; default: now
}

// Columns are the CSV header names, in any order; customer_id is required.
var Columns = []string{"customer_id", "name", "email", "phone", "locale", "time_zone", "plan",
	"lifetime_value_minor", "email_consent", "sms_consent", "customer_since", "updated_at"}

// Parse reads CSV (format "csv") or JSON lines (format "jsonl") and validates every row.
func Parse(r io.Reader, format string, now time.Time) ([]postgres.Customer, error) {
	var in *records
	var err error
	switch format {
	case "csv":
		in, err = readCSV(r)
	case "jsonl":
		in, err = readJSONL(r)
	default:
		return nil, fmt.Errorf("format %q is not csv or jsonl", format)
	}
	if err != nil {
		return nil, err
	}
	return in.customers(now)
}

// records are the records read from a file, the line each starts on, and the faults found
// reading them.
type records struct {
	recs  []Record
	lines []int
	errs  []error
}

func (in *records) add(rec Record, line int) {
	in.recs = append(in.recs, rec)
	in.lines = append(in.lines, line)
}

// customers turns the records into customers; it fails, naming every faulty line, when any
// record (or any line read) was faulty.
func (in *records) customers(now time.Time) ([]postgres.Customer, error) {
	errs := in.errs
	out := make([]postgres.Customer, 0, len(in.recs))
	for i, rec := range in.recs {
		c, err := rec.toCustomer(now)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", in.lines[i], err))
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// readCSV reads a CSV file whose header names its columns (of Columns, customer_id required).
func readCSV(r io.Reader) (*records, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: reading the CSV header: %w", err)
	}
	idx, err := csvColumns(header)
	if err != nil {
		return nil, err
	}
	in := &records{}
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rec, perr := csvRecord(idx, row)
		if len(perr) > 0 {
			in.errs = append(in.errs, fmt.Errorf("line %d: %s", line, strings.Join(perr, "; ")))
		}
		in.add(rec, line)
	}
	return in, nil
}

// csvColumns returns the index of each column of a CSV header; it fails when a column is
// unknown or customer_id is missing.
func csvColumns(header []string) (map[string]int, error) {
	var errs []error
	idx := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		known := false
		for _, c := range Columns {
			known = known || c == h
		}
		if !known {
			errs = append(errs, fmt.Errorf("line 1: unknown column %q (known: %s)", h, strings.Join(Columns, ", ")))
		}
		idx[h] = i
	}
	if _, ok := idx["customer_id"]; !ok {
		errs = append(errs, errors.New("line 1: the customer_id column is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return idx, nil
}

// csvRecord reads a CSV row into a Record, with the faults of its number and boolean columns.
func csvRecord(idx map[string]int, row []string) (Record, []string) {
	col := func(name string) string {
		if i, ok := idx[name]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	rec := Record{CustomerID: col("customer_id"), Name: col("name"), Email: col("email"), Phone: col("phone"),
		Locale: col("locale"), TimeZone: col("time_zone"), Plan: col("plan"),
		CustomerSince: col("customer_since"), UpdatedAt: col("updated_at")}
	var perr []string
	if v := col("lifetime_value_minor"); v != "" {
		var err error
		if rec.LifetimeValueMinor, err = strconv.ParseInt(v, 10, 64); err != nil {
			perr = append(perr, fmt.Sprintf("lifetime_value_minor: %q is not an integer", v))
		}
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"email_consent", &rec.EmailConsent}, {"sms_consent", &rec.SMSConsent}} {
		if v := col(b.name); v != "" {
			ok, err := strconv.ParseBool(v)
			if err != nil {
				perr = append(perr, fmt.Sprintf("%s: %q is not true or false", b.name, v))
			}
			*b.dst = &ok
		}
	}
	return rec, perr
}

// readJSONL reads a file of one JSON object (a Record) per line; blank lines are skipped.
func readJSONL(r io.Reader) (*records, error) {
	in := &records{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec Record
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			in.errs = append(in.errs, fmt.Errorf("line %d: %v", line, err))
			continue
		}
		if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
			in.errs = append(in.errs, fmt.Errorf("line %d: unexpected data after the JSON object (one object per line)", line))
			continue
		}
		in.add(rec, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return in, nil
}

func (r Record) toCustomer(now time.Time) (postgres.Customer, error) {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	c := postgres.Customer{CustomerID: r.CustomerID, Name: strings.TrimSpace(r.Name), Email: strings.TrimSpace(r.Email),
		Locale: r.Locale, TimeZone: r.TimeZone, Plan: r.Plan, LifetimeValueMinor: r.LifetimeValueMinor,
		EmailConsent: r.EmailConsent != nil && *r.EmailConsent, SMSConsent: r.SMSConsent != nil && *r.SMSConsent,
		EmailConsentSet: r.EmailConsent, SMSConsentSet: r.SMSConsent, UpdatedAt: now}
	// The limits of a payment.failed snapshot (events.CheckCustomerText): one rule for both.
	long := map[string]bool{}
	for _, f := range []struct{ name, v string }{{"name", c.Name}, {"email", c.Email}, {"locale", c.Locale},
		{"time_zone", c.TimeZone}, {"plan", c.Plan}} {
		if err := events.CheckCustomerText(f.name, f.v); err != nil {
			bad("%v", err)
			long[f.name] = true
		}
	}
	switch {
	case c.CustomerID == "":
		bad("customer_id: required")
	case !events.ValidID(c.CustomerID):
		// Events can only name customers by such ids, and no email address may become one.
		bad("customer_id: %q must be 1-128 letters, digits, '.', '_', ':' or '-'", c.CustomerID)
	}
	if c.Email != "" && !long["email"] {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			bad("email: not a valid email address")
		}
	}
	if r.Phone != "" {
		e164, err := events.NormalizePhone(r.Phone)
		if err != nil {
			bad("phone: %v", err)
		}
		c.Phone = e164
	}
	if c.TimeZone != "" && !long["time_zone"] {
		if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "Local" {
			bad("time_zone: %q is not an IANA time zone", c.TimeZone)
		}
	}
	if c.Locale != "" && !long["locale"] {
		if _, err := language.Parse(c.Locale); err != nil {
			bad("locale: %q is not a BCP 47 language tag", c.Locale)
		}
	}
	if c.LifetimeValueMinor < 0 {
		bad("lifetime_value_minor: must not be negative")
	}
	if r.CustomerSince != "" {
		t, err := parseTime(r.CustomerSince)
		if err != nil {
			bad("customer_since: %q is not a date (YYYY-MM-DD) or RFC 3339 time", r.CustomerSince)
		}
		c.CustomerSince = t
	}
	if r.UpdatedAt != "" {
		t, err := time.Parse(time.RFC3339, r.UpdatedAt)
		if err != nil {
			bad("updated_at: %q is not an RFC 3339 time", r.UpdatedAt)
		}
		c.UpdatedAt = t
	}
	if len(p) > 0 {
		return postgres.Customer{}, fmt.Errorf("customer %q: %s", r.CustomerID, strings.Join(p, "; "))
	}
	return c, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// Import writes the profiles (newest wins) in one transaction and returns how many changed.
// When PostgreSQL refuses a profile nothing is imported, and the error names its row (1 for
// the first profile of the file) and customer.
func Import(ctx context.Context, st *postgres.Store, cs []postgres.Customer) (int, error) {
	n, err := st.UpsertCustomers(ctx, cs)
	var re *postgres.CustomerRowError
	if errors.As(err, &re) {
		return 0, fmt.Errorf("row %d (customer %q): PostgreSQL refused it, so nothing was imported: %w", re.Index+1, re.CustomerID, re.Err)
	}
	if err != nil {
		return 0, fmt.Errorf("nothing was imported: %w", err)
	}
	return n, nil
}
