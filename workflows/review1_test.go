package workflows_test

// Hostile-review tests (branch review1). Each test states the behaviour a customer, billing
// or support would expect and fails on the change under review.

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
)

// The current details promise at most three lines (the Web UI shows three), but a support
// reason is copied in verbatim: a pause reason pasted with blank lines (a ticket excerpt)
// adds paragraphs, so the Web UI shows the ticket instead of what happens next.
func TestReview1_DetailsStayWithinThreeLinesWhateverTheReason(t *testing.T) {
	w := newWorld(t)
	w.update(time.Hour, recoup.UpdatePause, recoup.Pause{By: "alice", Reason: "ticket 4411:\n\ncustomer says card replaced\n\nwill call back"})
	var raw, details string
	w.rawQuery(2*time.Hour, &raw, &details)
	w.at(3*time.Hour, recoup.SignalCancel, recoup.Cancel{EventID: "evt_c", Reason: "test over"})
	w.run()
	if n := len(strings.Split(details, "\n\n")); n > 3 {
		t.Fatalf("details have %d paragraphs:\n%s", n, details)
	}
}
