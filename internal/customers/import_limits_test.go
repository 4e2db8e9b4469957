package customers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/customers"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// PostgreSQL can refuse a row Go accepted (here the operator's own CHECK constraint on
// plans). The import is one transaction: nothing of the file is written, not even the rows
// before the refused one, and the error names the row.
func TestImportIsAllOrNothingWhenPostgreSQLRefusesARow(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	if _, err := st.Pool().Exec(ctx, `ALTER TABLE customers ADD CONSTRAINT known_plan CHECK (plan IN ('basic', 'pro', 'enterprise'))`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_1", Name: "Ada", Plan: "pro", UpdatedAt: now.AddDate(0, -1, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ format, in string }{
		{"csv", "customer_id,name,plan\n" +
			"cus_1,Ada Renamed,pro\n" +
			"cus_2,Grace,basic\n" +
			"cus_3,Linus,platinum\n" +
			"cus_4,Barbara,enterprise\n"},
		{"jsonl", `{"customer_id":"cus_1","name":"Ada Renamed","plan":"pro"}` + "\n" +
			`{"customer_id":"cus_2","name":"Grace","plan":"basic"}` + "\n" +
			`{"customer_id":"cus_3","name":"Linus","plan":"platinum"}` + "\n" +
			`{"customer_id":"cus_4","name":"Barbara","plan":"enterprise"}` + "\n"},
	} {
		cs, err := customers.Parse(strings.NewReader(tt.in), tt.format, now)
		if err != nil {
			t.Fatalf("%s: Parse: %v", tt.format, err)
		}
		n, err := customers.Import(ctx, st, cs)
		if err == nil {
			t.Fatalf("%s: Import = %d, nil; want PostgreSQL's refusal", tt.format, n)
		}
		if n != 0 || !strings.Contains(err.Error(), `row 3 (customer "cus_3")`) || !strings.Contains(err.Error(), "nothing was imported") ||
			!strings.Contains(err.Error(), "known_plan") {
			t.Errorf("%s: Import = %d, %v; want 0 and an error naming row 3, cus_3 and the constraint", tt.format, n, err)
		}
		var count int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM customers`).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != 1 {
			t.Errorf("%s: %d profiles stored after the refused import, want only the 1 from before", tt.format, count)
		}
		if c, err := st.GetCustomer(ctx, "cus_1"); err != nil || c.Name != "Ada" {
			t.Errorf("%s: cus_1 = %q, %v; want the stored name Ada kept (row 1 rolled back)", tt.format, c.Name, err)
		}
	}
}

// A 10,000-character name was imported; every text field now has the limit of the
// payment.failed snapshot, and the error says which field and what the limit is.
func TestImportRefusesOverlongFields(t *testing.T) {
	tests := []struct{ field, value, want string }{
		{"name", strings.Repeat("n", 10000), "name: longer than 200 characters"},
		{"plan", strings.Repeat("p", 65), "plan: longer than 64 characters"},
		{"locale", "en-" + strings.Repeat("abcdefgh-", 4) + "x", "locale: longer than 35 characters"},
		{"time_zone", "Europe/" + strings.Repeat("B", 60), "time_zone: longer than 64 characters"},
		{"email", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", "email: longer than 254 characters"},
	}
	for _, tt := range tests {
		in := "customer_id," + tt.field + "\ncus_1," + tt.value + "\n"
		cs, err := customers.Parse(strings.NewReader(in), "csv", now)
		if err == nil || cs != nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s of %d characters: Parse = %d, %v; want an error on line 2 saying %q", tt.field, len(tt.value), len(cs), err, tt.want)
			continue
		}
		if len(err.Error()) > 300 {
			t.Errorf("%s: the error repeats the long value (%d bytes)", tt.field, len(err.Error()))
		}
	}
	// At the limits, accepted.
	in := "customer_id,name,plan,email\ncus_1," + strings.Repeat("é", 200) + "," + strings.Repeat("p", 64) + "," +
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com\n"
	if _, err := customers.Parse(strings.NewReader(in), "csv", now); err != nil {
		t.Errorf("values at the limits refused: %v", err)
	}
}

func TestImportRefusesControlCharactersInName(t *testing.T) {
	for _, name := range []string{`Ada\nLovelace`, `Ada\tLovelace`, `Ada\u0000`, `Ada\u001b[31m`, `Ada\u2028Lovelace`} {
		in := `{"customer_id":"cus_1","name":"` + name + `"}`
		_, err := customers.Parse(strings.NewReader(in), "jsonl", now)
		if err == nil || !strings.Contains(err.Error(), "name: must not contain control characters") {
			t.Errorf("name %s: error %v, want one about control characters", name, err)
		}
	}
	// A CSV cell may hold a line break inside quotes.
	_, err := customers.Parse(strings.NewReader("customer_id,name\ncus_1,\"Ada\nLovelace\"\n"), "csv", now)
	if err == nil || !strings.Contains(err.Error(), "name: must not contain control characters") {
		t.Errorf("CSV name with a line break: error %v", err)
	}
	// Invalid UTF-8 (PostgreSQL would refuse it) is caught before anything is written.
	_, err = customers.Parse(strings.NewReader("customer_id,name\ncus_1,Ada \xff\n"), "csv", now)
	if err == nil || !strings.Contains(err.Error(), "name: not valid UTF-8") {
		t.Errorf("CSV name with invalid UTF-8: error %v", err)
	}
}
