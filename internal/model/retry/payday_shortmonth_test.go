package retry_test

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/model/retry"
)

// a calendar paying on the 30th or 31st (validate accepts days 1-31) skips every
// month too short for it instead of paying on its last day: a failure on 1 Feb 2028 is
// retried on 31 March (a Friday), two months on, not on 29 Feb (leap year, a Tuesday).
func TestAPaydayOnThe31stFallsOnTheLastDayOfAShortMonth(t *testing.T) {
	p := retry.DefaultPolicy()
	p.Paydays["BR"] = retry.Calendar{Days: []int{31}}
	ny, _ := time.LoadLocation("America/New_York")
	got := p.Payday("BR", "America/New_York", time.Date(2028, 2, 1, 12, 0, 0, 0, ny))
	if want := time.Date(2028, 2, 29, 9, 0, 0, 0, ny); !got.Equal(want) {
		t.Fatalf("payday %s, want %s (the month's last day)", got.In(ny), want)
	}
}
