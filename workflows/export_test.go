package workflows

// SetContinueAsNewAfterEvents lowers the history length at which a waiting run continues as
// new, for tests; it returns a function that restores it.
func SetContinueAsNewAfterEvents(n int) (restore func()) {
	old := continueAsNewAfterEvents
	continueAsNewAfterEvents = n
	return func() { continueAsNewAfterEvents = old }
}

// DetailLines is the run's current details (the Web UI's three lines) for a state.
var DetailLines = detailLines

// HumanDuration is how timer summaries write a duration.
var HumanDuration = humanDuration

// DetailLinesAt is the run's current details at the run's clock now.
var DetailLinesAt = detailLinesAt
