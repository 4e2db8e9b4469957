package recoup_test

import (
	"testing"

	"github.com/recoup-dunning/recoup"
)

func TestWorkflowIDRoundTrip(t *testing.T) {
	for _, inv := range []string{"inv_1", "in_1MtHbELkdIwHu7ixl4OzzPMv", "dunning-inv", "a"} {
		id := recoup.WorkflowID(inv)
		if id != "dunning-"+inv {
			t.Errorf("WorkflowID(%q) = %q, want %q", inv, id, "dunning-"+inv)
		}
		got, ok := recoup.InvoiceIDFromWorkflowID(id)
		if !ok || got != inv {
			t.Errorf("InvoiceIDFromWorkflowID(%q) = %q, %v; want %q, true", id, got, ok, inv)
		}
	}
}

func TestInvoiceIDFromWorkflowIDRejectsOtherIDs(t *testing.T) {
	for _, id := range []string{"", "dunning-", "dunning", "inv_1", "Dunning-inv_1", "xdunning-inv_1", "temporal-sys-history-scanner"} {
		if got, ok := recoup.InvoiceIDFromWorkflowID(id); ok || got != "" {
			t.Errorf("InvoiceIDFromWorkflowID(%q) = %q, %v; want \"\", false", id, got, ok)
		}
	}
}

func TestStatusEnded(t *testing.T) {
	tests := []struct {
		status recoup.Status
		ended  bool
	}{
		{recoup.StatusActive, false},
		{recoup.StatusPaused, false},
		{recoup.StatusRecovered, true},
		{recoup.StatusExhausted, true},
		{recoup.StatusCanceled, true},
		{recoup.StatusFailed, true},
		{recoup.Status(""), false},
		{recoup.Status("RECOVERED"), false},
	}
	for _, tt := range tests {
		if got := tt.status.Ended(); got != tt.ended {
			t.Errorf("Status(%q).Ended() = %v, want %v", tt.status, got, tt.ended)
		}
	}
}

func TestChannelValid(t *testing.T) {
	tests := []struct {
		ch    recoup.Channel
		valid bool
	}{
		{recoup.ChannelEmail, true},
		{recoup.ChannelSMS, true},
		{recoup.ChannelNone, false},
		{recoup.Channel(""), false},
		{recoup.Channel("EMAIL"), false},
	}
	for _, tt := range tests {
		if got := tt.ch.Valid(); got != tt.valid {
			t.Errorf("Channel(%q).Valid() = %v, want %v", tt.ch, got, tt.valid)
		}
	}
}
