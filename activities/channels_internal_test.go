package activities

import (
	"slices"
	"testing"

	"github.com/recoup-dunning/recoup"
)

// Regression: the channel list a decision may use honours the policy's enabled channels and
// support's "next message by" request, and never holds an empty channel.
func TestAllowedChannelsHonoursPolicyAndSupportChoice(t *testing.T) {
	both := CustomerHistory{EmailReachable: true, SMSReachable: true}
	email, sms := recoup.ChannelEmail, recoup.ChannelSMS
	all := []recoup.Channel{email, sms}
	for _, tc := range []struct {
		name     string
		h        CustomerHistory
		excluded []recoup.Channel
		only     recoup.Channel
		enabled  []recoup.Channel
		want     []recoup.Channel
	}{
		{"both reachable and enabled", both, nil, "", all, all},
		{"support asked for sms", both, nil, sms, all, []recoup.Channel{sms}},
		{"support asked for email", both, nil, email, all, []recoup.Channel{email}},
		{"policy disables email", both, nil, "", []recoup.Channel{sms}, []recoup.Channel{sms}},
		{"policy disables sms", both, nil, "", []recoup.Channel{email}, []recoup.Channel{email}},
		{"support's channel disabled by policy", both, nil, sms, []recoup.Channel{email}, []recoup.Channel{email}},
		{"support's channel opted out", both, []recoup.Channel{sms}, sms, all, []recoup.Channel{email}},
		{"sms unreachable", CustomerHistory{EmailReachable: true}, nil, "", all, []recoup.Channel{email}},
		{"nothing left", both, all, "", all, nil},
	} {
		got := allowedChannels(tc.h, tc.excluded, tc.only, tc.enabled)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: allowedChannels = %q, want %q", tc.name, got, tc.want)
		}
	}
}
