package templates

import (
	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
)

// Fixture is a sample customer for `starter prompts lint` and `starter prompts preview`.
type Fixture struct {
	Name               string
	FirstName          string
	Plan               string
	Locale             string
	TimeZone           string
	EmailReachable     bool
	SMSReachable       bool
	LifetimeValueMinor int64
	TenureDays         int
	PaymentsSucceeded  int
	PaymentsFailed     int
	AmountMinor        int64
	Currency           string
	FailureCode        string
}

// Fixtures are the sample customers: several plans, locales, channels and histories.
var Fixtures = []Fixture{
	{Name: "ada-pro-en", FirstName: "Ada", Plan: "pro", Locale: "en-US", TimeZone: "America/New_York",
		EmailReachable: true, SMSReachable: true, LifetimeValueMinor: 118800, TenureDays: 740,
		PaymentsSucceeded: 11, PaymentsFailed: 1, AmountMinor: 9900, Currency: "USD", FailureCode: "card_declined"},
	{Name: "lucia-basic-es", FirstName: "Lucía", Plan: "basic", Locale: "es-ES", TimeZone: "Europe/Madrid",
		EmailReachable: true, SMSReachable: false, LifetimeValueMinor: 17400, TenureDays: 180,
		PaymentsSucceeded: 5, PaymentsFailed: 2, AmountMinor: 2900, Currency: "EUR", FailureCode: "insufficient_funds"},
	{Name: "jonas-enterprise-de", FirstName: "Jonas", Plan: "enterprise", Locale: "de-DE", TimeZone: "Europe/Berlin",
		EmailReachable: true, SMSReachable: true, LifetimeValueMinor: 2994000, TenureDays: 1500,
		PaymentsSucceeded: 12, PaymentsFailed: 0, AmountMinor: 49900, Currency: "EUR", FailureCode: "expired_card"},
	{Name: "sms-only-no-name", Plan: "pro", Locale: "en-GB", TimeZone: "Europe/London",
		EmailReachable: false, SMSReachable: true, LifetimeValueMinor: 9900, TenureDays: 40,
		PaymentsSucceeded: 1, PaymentsFailed: 1, AmountMinor: 9900, Currency: "GBP", FailureCode: "do_not_honor"},
}

// FixtureByName finds a fixture.
func FixtureByName(name string) (Fixture, bool) {
	for _, f := range Fixtures {
		if f.Name == name {
			return f, true
		}
	}
	return Fixture{}, false
}

func ruleFacts(i int) policy.Facts {
	return policy.Facts{Step: i + 1, Plan: "enterprise", AllowedChannels: []recoup.Channel{recoup.ChannelEmail, recoup.ChannelSMS},
		AmountDue: "$1,234.56"}
}

// fixtureRetryAdvice is a long retry-advice line (RetryAdviceLine) for the token budget.
const fixtureRetryAdvice = "No further automatic retry: Mastercard budget spent (10 a day, 35 in 30 days, and Recoup's own cap)."

func fixturePrompt(pol *policy.Policy, lang string) PromptData {
	caps := pol.CapsFor("enterprise")
	return PromptData{Step: 2, TotalSteps: len(pol.ScheduleDays), Plan: "enterprise", TenureDays: 1500,
		LifetimeValue: "$29,940.00", AmountDue: "$499.00", FailureCode: "insufficient_funds",
		PaymentsSucceeded: 12, PaymentsFailed: 1, EarlierRuns: 2, EarlierRunsRecovered: 2, MessagesThisRun: 1,
		AllowedChannels: []string{"email", "sms"}, Language: lang, Tones: pol.Tones,
		MaxDiscountPercent: caps.MaxDiscountPercent, MaxExtensionDays: caps.MaxExtensionDays,
		SMSMaxChars: pol.SMSMaxChars, EmailMaxChars: pol.EmailMaxChars, SubjectMaxChars: pol.SubjectMaxChars}
}
