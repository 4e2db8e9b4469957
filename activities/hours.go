package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nyaruka/phonenumbers"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
)

// Allowed hours (policy.yaml quiet_hours) are enforced twice: DecideStrategy and SendWindow
// say when the message may go out (Decision.SendAt/SendUntil, SendWindowResult), and the
// send itself checks the worker's clock at every attempt, against the window it was given
// and against the customer's allowed hours computed afresh (policy.CustomerZones: the
// customer's time zone, or the zones inferred from the phone number or locale).
//
// IgnoreQuietHours (demo only) lifts them for email and for SMS in log delivery mode; no
// one overrides SMS hours: with a real SMS provider (DunningActivities.SMS set) an SMS is only
// ever handed over inside the customer's allowed hours.

// hoursApply reports whether allowed hours bound messages on ch.
func (a *DunningActivities) hoursApply(ch recoup.Channel) bool {
	return !a.IgnoreQuietHours || (ch == recoup.ChannelSMS && a.SMS != nil)
}

// SendWindowInput asks when a message to the customer may be sent on a channel.
type SendWindowInput struct {
	CustomerID string
	Channel    recoup.Channel
	Now        time.Time // the worker's clock when zero
}

// SendWindowResult is the allowed-hours window at or after Now: a message may be handed to
// the provider from NotBefore until NotAfter (zero NotAfter: no limit, quiet hours are
// ignored for this channel).
type SendWindowResult struct {
	NotBefore time.Time
	NotAfter  time.Time
	Zone      string // the time zone used, or the candidates and how they were inferred
}

// SendWindow returns the allowed-hours window for the customer on in.Channel at or after
// in.Now. An unknown customer is a non-retryable UnknownCustomer error.
func (a *DunningActivities) SendWindow(ctx context.Context, in SendWindowInput) (SendWindowResult, error) {
	now := in.Now
	if now.IsZero() {
		now = a.now()
	}
	c, err := a.Store.GetCustomer(ctx, in.CustomerID)
	if errors.Is(err, postgres.ErrUnknownCustomer) {
		return SendWindowResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("send window: unknown customer %q", in.CustomerID), recoup.ErrTypeUnknownCustomer, err)
	}
	if err != nil {
		return SendWindowResult{}, err
	}
	return a.sendWindow(c, in.Channel, now)
}

func (a *DunningActivities) sendWindow(c postgres.Customer, ch recoup.Channel, now time.Time) (SendWindowResult, error) {
	if !a.hoursApply(ch) {
		return SendWindowResult{NotBefore: now, Zone: "any time: quiet hours ignored (RECOUP_IGNORE_QUIET_HOURS, demo only)"}, nil
	}
	w, err := a.allowedHours(c, now)
	if err != nil {
		return SendWindowResult{}, err
	}
	return SendWindowResult{NotBefore: w.Start, NotAfter: w.End, Zone: w.Zone}, nil
}

// allowedHours is the customer's allowed-hours window at or after now, by the policy in force.
func (a *DunningActivities) allowedHours(c postgres.Customer, now time.Time) (policy.Window, error) {
	q := a.Prompts().Policy.QuietHours
	return q.WindowAt(now, policy.CustomerZones(policy.ZoneHints{TimeZone: c.TimeZone, Phone: c.Phone, Locale: c.Locale}))
}

// outsideHours says why a message to c on ch may not be handed to the provider at now, or
// returns "" when it may: now must be inside [in.NotBefore, in.NotAfter) where those are
// set, and inside the customer's allowed hours where they apply (hoursApply).
func (a *DunningActivities) outsideHours(c postgres.Customer, ch recoup.Channel, in SendInput, now time.Time) (string, error) {
	at := now.UTC().Format(time.RFC3339)
	if (!in.NotBefore.IsZero() && now.Before(in.NotBefore)) || (!in.NotAfter.IsZero() && !now.Before(in.NotAfter)) {
		return fmt.Sprintf("not sent: attempt at %s is outside the send window %s until %s", at, stamp(in.NotBefore), stamp(in.NotAfter)), nil
	}
	if !a.hoursApply(ch) {
		return "", nil
	}
	w, err := a.allowedHours(c, now)
	if err != nil {
		return "", err
	}
	if !w.Contains(now) {
		q := a.Prompts().Policy.QuietHours
		return fmt.Sprintf("not sent: attempt at %s is outside the allowed hours %s-%s in %s; next window %s until %s",
			at, q.Start, q.End, w.Zone, stamp(w.Start), stamp(w.End)), nil
	}
	return "", nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(unbounded)"
	}
	return t.UTC().Format(time.RFC3339)
}

// invalidAddress says why the stored address for ch is not one a provider can take, or "".
// Addresses are validated on import, but a stored one may predate that or have been
// changed in the database; this check runs before the reservation, so nothing is sent.
func invalidAddress(c postgres.Customer, ch recoup.Channel) string {
	switch ch {
	case recoup.ChannelEmail:
		if !sendgrid.ValidAddress(c.Email) {
			return "the stored email address is not a valid address"
		}
	case recoup.ChannelSMS:
		n, err := phonenumbers.Parse(c.Phone, "")
		if err != nil || !phonenumbers.IsValidNumber(n) || phonenumbers.Format(n, phonenumbers.E164) != c.Phone {
			return "the stored phone number is not a valid E.164 number"
		}
	}
	return ""
}
