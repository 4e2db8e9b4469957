package workflows_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/recoup-dunning/recoup/activities"
)

// Recorded histories refer to activities by name: every activity type they schedule is still
// an exported method (hence a registered activity) of DunningActivities or
// DetectorActivities, and the preview is no activity.
func TestRecordedActivityNamesAreRegistered(t *testing.T) {
	registered := map[string]bool{}
	for _, v := range []any{&activities.DunningActivities{}, &activities.DetectorActivities{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumMethod() {
			registered[typ.Method(i).Name] = true
		}
	}
	if registered["PreviewDecision"] {
		t.Error("PreviewDecision is a method of an activities struct, so the worker registers it as an activity")
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	more, _ := filepath.Glob(filepath.Join("testdata", "detector", "*.json"))
	var names []string
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		collectActivityTypes(v, &names)
	}
	if len(names) == 0 {
		t.Fatal("no activity types found in the recorded histories")
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if !registered[n] {
			t.Errorf("recorded histories schedule activity %q, which is no longer a registered activity", n)
		}
	}
}

func collectActivityTypes(v any, names *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if at, ok := e.(map[string]any); ok && k == "activityType" {
				if n, ok := at["name"].(string); ok {
					*names = append(*names, n)
				}
			}
			collectActivityTypes(e, names)
		}
	case []any:
		for _, e := range x {
			collectActivityTypes(e, names)
		}
	}
}
