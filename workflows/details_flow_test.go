package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
)

// The current details stay at most three paragraphs (the Web UI shows three) whatever a
// support reason holds: a pause reason pasted with blank lines (a ticket excerpt) is kept on
// one line.
func TestDetailsStayWithinThreeParagraphsWhateverTheReason(t *testing.T) {
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
