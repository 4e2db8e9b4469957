// Package retry is the pure model of Recoup's retry advice: given what a payment failure
// means (its recoup.DeclineClass), the attempts already made on the card for this invoice,
// the customer's zone and country, and the policy (prompts/retry.yaml), Advise says when
// billing should retry the charge, or that it should not. No I/O, no clock: safe inside a
// workflow.
//
// Network rules (the defaults of prompts/retry.yaml; every figure is configurable):
//   - Visa: no reattempt after a category-1 decline ("issuer will never approve": 04, 07,
//     12, 14, 15, 41, 43, 46, 57, R0, R1, R3 — checkout.com "Visa response codes", 2025);
//     categories 2–4 may be reattempted up to 15 times in 30 days. Visa raised that limit
//     to 20 on 25 May 2025 (Cielo changelog "New limit for Visa retries starting May 25
//     2025"; TabaPay "Excessive Retry Rules"); 15 is kept as the default because it
//     satisfies both editions.
//   - Mastercard: no retry after Merchant Advice Code 03 ("do not try again") or 21
//     ("payment cancellation"); at most 10 declines per card in a day and 35 in 30 days
//     (TabaPay "Excessive Retry Rules", developers.tabapay.com/docs/excessive-retry-rules;
//     Mastercard's own Transaction Processing Excellence manual is not public, so these
//     are second-hand and configurable).
//
// Every attempt on the card for this invoice counts, the first failure included
// (conservative: the networks count reattempts after the first decline).
package retry

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/declines"
)

// Attempt is one charge attempt on the card for the invoice (the first failure included).
type Attempt struct {
	At   time.Time `json:"at"`
	Code string    `json:"code,omitempty"` // the failure code, "" when unknown
}

// Input is everything Advise needs.
type Input struct {
	Class recoup.DeclineClass
	// Network is the card network ("visa", "mastercard", … or "" when unknown: the
	// strictest configured network's limits apply).
	Network string
	// Code is the newest failure's code; AdviceCode a network advice code that came with it
	// (Mastercard MAC, e.g. "03").
	Code, AdviceCode string
	Attempts         []Attempt // oldest first, the newest failure included
	TimeZone         string    // IANA; "" or unknown: UTC
	Country          string    // ISO 3166-1 alpha-2, for the payday calendar
	Now              time.Time
	// CardUpdated: the customer updated the card since the failure; CustomerActed: they
	// completed the authentication the issuer asked for. RetryAfterCardUpdate is billing's
	// explicit request to be advised after a card update (else billing charges the new card
	// itself and Recoup advises no retry).
	CardUpdated, CustomerActed, RetryAfterCardUpdate bool
}

// Advice is what Recoup tells billing.
type Advice struct {
	DoNotRetry bool                `json:"do_not_retry"`
	RetryAt    time.Time           `json:"retry_at,omitzero"`
	Class      recoup.DeclineClass `json:"class"`
	Reason     string              `json:"reason"`
	// Remaining is how many attempts the network budgets still allow at RetryAt (the
	// advised one included); 0 with DoNotRetry when the budget is spent.
	Remaining int `json:"remaining"`
}

// Advise applies the policy to in.
func (p *Policy) Advise(in Input) Advice {
	out := Advice{Class: in.Class}
	if in.Class == "" {
		out.Class = recoup.DeclineUnknown
	}
	stop := func(reason string) Advice {
		out.DoNotRetry, out.Reason, out.Remaining = true, reason, p.remaining(in, in.Now)
		return out
	}
	net := p.network(in.Network)
	if codeIn(net.NeverRetryAdviceCodes, in.AdviceCode) {
		return stop(fmt.Sprintf("%s rules forbid any retry after code %s", net.Name, in.AdviceCode))
	}
	if codeIn(net.NeverRetryCodes, in.Code) {
		return stop(fmt.Sprintf("%s rules forbid any retry after code %s", net.Name, in.Code))
	}
	if in.CardUpdated && !in.RetryAfterCardUpdate {
		return stop("the card was updated: billing charges the new card; no retry of the old one")
	}
	var at time.Time
	var why string
	switch out.Class {
	case recoup.DeclineDoNotRetry:
		return stop("the issuer will not approve this card again")
	case recoup.DeclineUpdatePaymentMethod, recoup.DeclineAuthenticationRequired:
		acted := in.CardUpdated || (out.Class == recoup.DeclineAuthenticationRequired && in.CustomerActed)
		if !acted {
			return stop("no blind retry: wait for the customer to " + map[bool]string{true: "authenticate", false: "update the card"}[out.Class == recoup.DeclineAuthenticationRequired])
		}
		at, why = in.Now.Add(p.spacing(out.Class, 0)), "the customer acted; retry soon"
	case recoup.DeclineInsufficientFunds:
		at = p.Payday(in.Country, in.TimeZone, in.Now.Add(p.MinGap.D()))
		why = "insufficient funds: retry on the next likely payday (" + at.In(zone(in.TimeZone)).Format("Mon 2 Jan 15:04 MST") + ")"
	default: // issuer_unavailable, generic_soft, unknown
		n := retriesSince(in)
		at, why = in.Now.Add(p.spacing(out.Class, n)), fmt.Sprintf("%s: retry %d in %s", out.Class, n+1, short(p.spacing(out.Class, n)))
	}
	if limit := p.MaxAttempts; limit > 0 && len(in.Attempts) >= limit {
		return stop(fmt.Sprintf("Recoup's budget of %d attempts for the invoice is spent", limit))
	}
	at, ok := p.withinBudget(in, at)
	if !ok {
		return stop(fmt.Sprintf("%s budget spent (%s)", net.Name, net.limitsText()))
	}
	out.RetryAt, out.Reason, out.Remaining = at, why, p.remaining(in, at)
	return out
}

// retriesSince counts the attempts after the first failure.
func retriesSince(in Input) int { return max(len(in.Attempts)-1, 0) }

// spacing is the wait before retry n (0-based) of class c; the last entry repeats.
func (p *Policy) spacing(c recoup.DeclineClass, n int) time.Duration {
	s := p.Spacing[c]
	if len(s) == 0 {
		s = p.Spacing[recoup.DeclineGenericSoft]
	}
	if len(s) == 0 {
		return 24 * time.Hour
	}
	return s[min(n, len(s)-1)].D()
}

// withinBudget moves at later until every limit of the network allows one more attempt, or
// reports that none ever will within the horizon (the invoice's attempts only age out).
func (p *Policy) withinBudget(in Input, at time.Time) (time.Time, bool) {
	net := p.network(in.Network)
	for range 64 {
		moved := false
		for _, l := range net.Limits {
			used := attemptsIn(in.Attempts, at.Add(-l.Window.D()), at)
			if used < l.Max {
				continue
			}
			if l.Max <= 0 {
				return time.Time{}, false
			}
			// The oldest attempt of the window that must age out for one more to fit.
			inWin := attemptsList(in.Attempts, at.Add(-l.Window.D()), at)
			at, moved = inWin[used-l.Max].At.Add(l.Window.D()+time.Minute), true
		}
		if !moved {
			break
		}
	}
	if p.Horizon > 0 && len(in.Attempts) > 0 && at.Sub(in.Attempts[0].At) > p.Horizon.D() {
		return time.Time{}, false
	}
	return at, true
}

// remaining is the tightest limit's room at t, the attempt at t included.
func (p *Policy) remaining(in Input, t time.Time) int {
	net := p.network(in.Network)
	rem := -1
	for _, l := range net.Limits {
		r := l.Max - attemptsIn(in.Attempts, t.Add(-l.Window.D()), t)
		if rem < 0 || r < rem {
			rem = r
		}
	}
	if p.MaxAttempts > 0 {
		if r := p.MaxAttempts - len(in.Attempts); rem < 0 || r < rem {
			rem = r
		}
	}
	return max(rem, 0)
}

func attemptsIn(as []Attempt, from, to time.Time) int { return len(attemptsList(as, from, to)) }

// attemptsList are the attempts in (from, to], oldest first.
func attemptsList(as []Attempt, from, to time.Time) []Attempt {
	var out []Attempt
	for _, a := range as {
		if a.At.After(from) && !a.At.After(to) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y Attempt) int { return x.At.Compare(y.At) })
	return out
}

// NetworkOfBIN names the card network of a BIN by its leading digits (Visa 4, Mastercard
// 51–55 and 2221–2720); "" when neither.
func NetworkOfBIN(bin string) string {
	if len(bin) < 4 {
		return ""
	}
	if bin[0] == '4' {
		return "visa"
	}
	var n int
	_, _ = fmt.Sscanf(bin[:4], "%d", &n)
	if (n >= 5100 && n < 5600) || (n >= 2221 && n <= 2720) {
		return "mastercard"
	}
	return ""
}

// short writes a duration as "6h", "10m", "1h30m".
func short(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func zone(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil && name != "" {
		return loc
	}
	return time.UTC
}

// codeIn reports whether code is one of codes, compared as network codes: a namespace
// prefix ("iso8583:", "visa_category:", "stripe:") is dropped and case, spaces, dashes and
// underscores are folded (declines.Normalize) on both sides, so "ISO8583:12", "iso8583:12"
// and "12" match, and "r0" matches "R0". An empty code matches nothing.
func codeIn(codes []string, code string) bool {
	c := bareCode(code)
	if c == "" {
		return false
	}
	return slices.ContainsFunc(codes, func(k string) bool { return bareCode(k) == c })
}

func bareCode(code string) string {
	if i := strings.LastIndex(code, ":"); i >= 0 {
		code = code[i+1:]
	}
	return declines.Normalize(code)
}
