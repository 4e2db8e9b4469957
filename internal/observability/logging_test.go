package observability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/observability"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"ada@example.com": "a***@example.com",
		"mail Ada.Lovelace+bills@mail.example.co.uk now": "mail A***@mail.example.co.uk now",
		"+14155550123":                    "+1******0123",
		"call +1 (415) 555-0123.":         "call +1******0123.",
		"+44 20 7946 0958":                "+4*******0958",
		"4155550123":                      "4*****0123",
		"(415) 555-0123":                  "4*****0123",
		"to=+14155550123,ada@example.com": "to=+1******0123,a***@example.com",
		"on 2026-11-30 4155550123":        "on 2026-11-30 4*****0123",
		// Not contact data: kept as is.
		"2026-11-30 15:00:00 +0000 UTC":               "2026-11-30 15:00:00 +0000 UTC",
		"2026-11-30T15:00:00Z":                        "2026-11-30T15:00:00Z",
		"dial tcp 192.168.100.200:5432: refused":      "dial tcp 192.168.100.200:5432: refused",
		"SM0123456789abcdef0123456789abcdef":          "SM0123456789abcdef0123456789abcdef",
		"dunning-inv_1/step-2/email":                  "dunning-inv_1/step-2/email",
		"twilio: HTTP 400 code 21211: invalid number": "twilio: HTTP 400 code 21211: invalid number",
		"amount $49.00, 4900 minor units, attempt 3":  "amount $49.00, 4900 minor units, attempt 3",
		"evt_1764514800000000000":                     "evt_1764514800000000000",
		"":                                            "",
		"user@localhost is not an address with a TLD": "user@localhost is not an address with a TLD",
	} {
		if got := observability.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

type customer struct {
	Name  string
	Email string
	Phone string
}

type contactValuer struct{}

func (contactValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("email", "grace@navy.example"), slog.Int("n", 1))
}

var secrets = []string{"ada@example.com", "lovelace@", "grace@navy.example", "bob@shop.example",
	"4155550123", "555-0123", "7946 0958", "79460958", "+15005550006"}

func logEverything(l *slog.Logger) {
	l = l.With("to", "bob@shop.example", slog.Group("contact", "phone", "+1 (415) 555-0123"))
	l.Info("sending reminder to ada@example.com at +14155550123",
		"email", "ada@example.com",
		"phone", "+14155550123",
		slog.Group("customer", "email", "lovelace@example.com", slog.Group("sms", "to", "+44 20 7946 0958")),
		"err", errors.New("sendgrid: HTTP 400: invalid address ada@example.com"),
		"list", []string{"ok", "ada@example.com"},
		"struct", customer{Name: "Ada", Email: "ada@example.com", Phone: "+15005550006"},
		"map", map[string]any{"phone": "+15005550006"},
		"valuer", contactValuer{},
		"invoice_id", "inv_1", "amount_minor", 4900,
	)
	l.WithGroup("activity").Warn("retry", "to", "ada@example.com", "attempt", 2)
}

func TestLoggerMasksContactData(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			logEverything(observability.NewLogger(format, slog.LevelDebug, &buf))
			out := buf.String()
			if strings.Count(out, "\n") != 2 {
				t.Fatalf("want 2 lines, got:\n%s", out)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("log output contains %q:\n%s", s, out)
				}
			}
			for _, want := range []string{"a***@example.com", "+1******0123", "b***@shop.example", "l***@example.com",
				"+4*******0958", "g***@navy.example", "inv_1", "4900", "+1******0006"} {
				if !strings.Contains(out, want) {
					t.Errorf("log output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestJSONLoggerKeepsStructure(t *testing.T) {
	var buf bytes.Buffer
	logEverything(observability.NewLogger("json", slog.LevelInfo, &buf))
	var line map[string]any
	if err := json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &line); err != nil {
		t.Fatal(err)
	}
	if line["msg"] != "sending reminder to a***@example.com at +1******0123" {
		t.Errorf("msg = %v", line["msg"])
	}
	c := line["customer"].(map[string]any)
	if c["email"] != "l***@example.com" || c["sms"].(map[string]any)["to"] != "+4*******0958" {
		t.Errorf("customer group = %v", c)
	}
	if line["contact"].(map[string]any)["phone"] != "+1******0123" || line["to"] != "b***@shop.example" {
		t.Errorf("With attributes = %v / %v", line["contact"], line["to"])
	}
	if l, ok := line["list"].([]any); !ok || len(l) != 2 || l[1] != "a***@example.com" {
		t.Errorf("list = %v", line["list"])
	}
	if line["amount_minor"] != float64(4900) {
		t.Errorf("amount_minor = %v", line["amount_minor"])
	}
	if line["valuer"].(map[string]any)["email"] != "g***@navy.example" {
		t.Errorf("valuer = %v", line["valuer"])
	}
}

func TestLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	l := observability.NewLogger("json", slog.LevelWarn, &buf)
	l.Info("hidden")
	if l.Enabled(context.Background(), slog.LevelInfo) || buf.Len() != 0 {
		t.Fatalf("info logged at level warn: %s", buf.String())
	}
}
