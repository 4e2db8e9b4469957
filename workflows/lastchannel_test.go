package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
)

// The LastChannel search attribute (what support filters runs by) names the channel of the
// newest message the run sent. A run with lean-run sets it with the step's decision, in the
// same upsert, and sets it back when the step's message is not sent after all.
func TestLastChannelNamesTheChannelOfAMessageSent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		optOut bool
		want   string
	}{
		{name: "sent by SMS", want: "sms"},
		{name: "SMS opted out while its send was retried: skipped", optOut: true, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.decide = smsUnlessExcluded
			last, upserts := "", 0
			w.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
				sa := args.Get(0).(temporal.SearchAttributes)
				upserts++
				if v, ok := sa.GetKeyword(recoup.LastChannelKey); ok {
					last = v
				} else if sa.Size() == 0 {
					// An upsert that sets nothing unsets (the SDK hides which key): the
					// workflow unsets nothing but LastChannel.
					last = ""
				}
			}).Return(nil)
			if tc.optOut {
				w.down["Send"] = 2 * time.Hour
				w.at(time.Hour, recoup.SignalOptOut, recoup.OptOut{EventID: "evt_stop", Channel: recoup.ChannelSMS})
			}
			w.at(2*day, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c"})
			_, st := w.run()
			if len(st.Messages) != 1 {
				t.Fatalf("messages %+v, want step 1's", st.Messages)
			}
			if last != tc.want {
				t.Errorf("LastChannel = %q after %d upserts, want %q (message %s)", last, upserts, tc.want, st.Messages[0].Delivery)
			}
		})
	}
}
