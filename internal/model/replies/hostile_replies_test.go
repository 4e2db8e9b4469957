package replies_test

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/model/replies"
)

// Replies a hostile review found mishandled: each test names the behaviour it keeps.

// A phone number written with dots is masked like one written with dashes: otherwise the
// customer's number lands in inbound_replies.text, the workflow history and the Web UI.
func TestMaskHidesPhoneNumbersWrittenWithDots(t *testing.T) {
	for _, in := range []string{"call me at 415.555.0100", "my cell +1.415.555.0100", "ring 020.7946.0958", "appelez 06.12.34.56.78"} {
		if got := replies.Mask(in, 500); strings.Contains(got, "555") || strings.Contains(got, "7946") || strings.Contains(got, "56.78") {
			t.Errorf("Mask(%q) = %q: phone number kept", in, got)
		}
	}
	for _, date := range []string{"2026-12-15", "15.12.2026", "12/15/2026", "15.12.", "12/15"} {
		if got := replies.Mask("I will pay on "+date, 500); !strings.Contains(got, date) {
			t.Errorf("Mask kept no date %q: %q", date, got)
		}
	}
}

// STOP with an emoji, exclamation marks or said twice is an opt-out; a STOP inside a
// sentence is free text, as the carriers treat it (only a whole-message keyword).
func TestStopWithEmojiOrRepeatedIsAnOptOut(t *testing.T) {
	for _, in := range []string{"STOP 🛑", "Stop ✋", "🛑 STOP", "STOP!!! 😡", "STOP STOP", "stop. stop.", "👍🏽 START", "opt-out"} {
		want := replies.KeywordStop
		if strings.Contains(in, "START") {
			want = replies.KeywordStart
		}
		if got := replies.DetectKeyword(in); got != want {
			t.Errorf("DetectKeyword(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"STOP sending me texts", "STOP PLEASE", "please cancel", "STOP START", "🛑"} {
		if got := replies.DetectKeyword(in); got != replies.KeywordNone {
			t.Errorf("DetectKeyword(%q) = %q, want free text", in, got)
		}
	}
}

// The reply is masked before it is classified: an ISO date (what autofill writes) stays a
// date and is read as the promise.
func TestISODatePromiseSurvivesMasking(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{"I will pay on 2026-12-15", "pago el 2026/12/15", "ich zahle am 15.12.2026"} {
		masked := replies.Mask(in, 500)
		if d, ok := replies.PromisedDate(masked, now, ""); !ok || d != "2026-12-15" {
			t.Errorf("masked %q → PromisedDate = %q, %v; want 2026-12-15", masked, d, ok)
		}
	}
}

// An amount with cents is no date: "$5.12 on Friday" is Friday, not 5 December.
func TestAmountWithCentsIsNotADate(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) // a Tuesday
	for text, locale := range map[string]string{"I can pay 5.12 on Friday": "", "I can pay $5.12 on Friday": "en-US",
		"puedo pagar 5,12 € el viernes": "es-ES", "ich zahle 5,12 € am Freitag": "de-DE", "I can pay 5.12 on Friday ": "en-GB"} {
		if d, _ := replies.PromisedDate(text, now, locale); d != "2026-12-04" {
			t.Errorf("PromisedDate(%q, %s) = %q, want Friday 2026-12-04", text, locale, d)
		}
	}
	if d, _ := replies.PromisedDate("ich zahle am 5.12", now, "de-DE"); d != "2026-12-05" {
		t.Errorf("a German day.month is a date: got %q", d)
	}
}

// Outlook quotes with a "From: / Sent: / To: / Subject:" block (or its es/de forms), not
// "On … wrote:": the quoted dunning email is ours, not the customer's words.
func TestOutlookQuoteIsNotTheCustomersWords(t *testing.T) {
	body := "\r\n\r\nHi Ada,\r\n\r\nYour card was declined.\r\n" +
		"Update your payment details by December 15 and we'll take 10% off this invoice.\r\nAmount due: $49.00\r\n"
	quotes := map[string]string{
		"en": "\r\n\r\n________________________________\r\nFrom: Shop <billing@shop.example>\r\nSent: Tuesday, December 1, 2026 10:00 AM\r\n" +
			"To: Ada Lovelace <ada@example.com>\r\nSubject: Your payment did not go through" + body,
		"en-bold":  "\n\n*From:* Shop <billing@shop.example>\n*Sent:* Tuesday, December 1, 2026 10:00 AM\n*Subject:* Your payment" + body,
		"original": "\n\n-----Original Message-----\nFrom: Shop\nSent: Tuesday\nSubject: Your payment" + body,
		"es":       "\n\n________________________________\nDe: Shop <billing@shop.example>\nEnviado: martes, 1 de diciembre de 2026 10:00\nPara: Ada\nAsunto: Su pago" + body,
		"de":       "\n\n________________________________\nVon: Shop <billing@shop.example>\nGesendet: Dienstag, 1. Dezember 2026 10:00\nAn: Ada\nBetreff: Ihre Zahlung" + body,
	}
	c := shippedConfig(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for name, quote := range quotes {
		if got := replies.StripQuoted("STOP" + quote); replies.DetectKeyword(got) != replies.KeywordStop {
			t.Errorf("%s: STOP above an Outlook quote: kept %q, not a STOP", name, got)
		}
		text := replies.Mask(replies.StripQuoted("Who is this? I never heard of you."+quote), 500)
		if cl := c.Classify(text, now, "en-US"); cl.PromisedOn != "" || strings.Contains(text, "December 15") {
			t.Errorf("%s: classified our own quoted email: %+v (text %q)", name, cl, text)
		}
	}
}

// Numeric dates follow the customer's locale: month first for en-US, day first for de and
// es (and en-GB); a date valid both ways with no locale to order it is no date (support
// looks at it) rather than a guess; one valid only one way is read that way.
func TestNumericDatesFollowTheCustomersLocale(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct{ text, locale, want string }{
		{"I'll pay 12/10", "en-US", "2026-12-10"}, {"I'll pay on 1/12", "en-US", "2027-01-12"},
		{"I'll pay 12/10", "en_us", "2026-12-10"}, {"I'll pay on 1/12", "en-GB", "2026-12-01"},
		{"pago el 10/12", "es-MX", "2026-12-10"}, {"zahle am 10.12.", "de", "2026-12-10"},
		{"I'll pay 12/15", "", "2026-12-15"}, {"I'll pay 15/12", "", "2026-12-15"}, {"I'll pay 12/12", "", "2026-12-12"},
		{"I'll pay 12/10", "", ""}, {"I'll pay 12/10", "en", ""}, {"I'll pay 12/10 on Friday", "", ""},
	} {
		if d, ok := replies.PromisedDate(c.text, now, c.locale); d != c.want || ok != (c.want != "") {
			t.Errorf("PromisedDate(%q, %q) = %q, %v; want %q", c.text, c.locale, d, ok, c.want)
		}
	}
}
