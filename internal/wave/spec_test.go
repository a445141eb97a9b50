package wave

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smsflow/smsflow/internal/sms"
	"github.com/smsflow/smsflow/internal/sms/smserr"
)

var testNow = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func goodSpec() Spec {
	start := testNow.Add(24 * time.Hour)
	return Spec{
		Name:         "wave 1: web tier",
		ProjectID:    "proj-1",
		TaskDefaults: TaskDefaults{Type: sms.MigrateBlock, Syncing: new(true), StartTargetServer: new(false), OverSpeedThreshold: new(10.0)},
		Members: []Member{
			{SourceID: "src-1"},
			{Name: "web-02", TargetName: "web-02-new", Priority: new(int32(2)), DiskSizesGiB: []int64{40, 100}},
			{IP: "10.0.0.3"},
		},
		StartAt:       &start,
		MaxConcurrent: 5,
		Budget: Budget{DefaultMbps: 500, Windows: []TimeWindow{
			{Start: "08:00", End: "18:00", Weekdays: []Weekday{Monday, Tuesday, Wednesday, Thursday, Friday}, Mbps: 100},
			{Start: "22:00", End: "06:00", Mbps: 2000}, // every night, across midnight
		}},
		TimeZone:       "Europe/Berlin",
		CutoverWindows: []TimeWindow{{Start: "23:00", End: "03:00", Weekdays: []Weekday{Saturday}}},
		CutoverMode:    CutoverApprove,
		TestFirst:      true,
		MaxFailures:    2,
	}
}

type fieldCode struct {
	Field string
	Code  smserr.Code
}

func TestValidate(t *testing.T) {
	if ps := Validate(goodSpec(), testNow); len(ps) != 0 {
		t.Fatalf("good spec: %v", ps)
	}
	tests := []struct {
		name   string
		change func(*Spec)
		want   []fieldCode
	}{
		{"no name", func(s *Spec) { s.Name = " " }, []fieldCode{{"name", ErrInvalid.Code}}},
		{"long name", func(s *Spec) { s.Name = strings.Repeat("é", MaxNameLen+1) }, []fieldCode{{"name", ErrInvalid.Code}}},
		{"control characters", func(s *Spec) { s.Description = "a\x00b" }, []fieldCode{{"description", ErrInvalid.Code}}},
		{"no project", func(s *Spec) { s.ProjectID = "" }, []fieldCode{{"project_id", ErrInvalid.Code}}},
		{"bad type", func(s *Spec) { s.TaskDefaults.Type = "MIGRATE_ALL" }, []fieldCode{{"task_defaults.type", ErrInvalid.Code}}},
		{"bad threshold", func(s *Spec) { s.TaskDefaults.OverSpeedThreshold = new(101.0) }, []fieldCode{{"task_defaults.over_speed_threshold", ErrInvalid.Code}}},
		{"start in the past", func(s *Spec) { s.StartAt = new(testNow.Add(-time.Second)) }, []fieldCode{{"start_at", ErrStartInPast.Code}}},
		{"start now is fine", func(s *Spec) { s.StartAt = new(testNow) }, nil},
		{"on demand", func(s *Spec) { s.StartAt = nil }, nil},
		{"max_concurrent 0", func(s *Spec) { s.MaxConcurrent = 0 }, []fieldCode{{"max_concurrent", ErrMaxConcurrent.Code}}},
		{"max_concurrent 101", func(s *Spec) { s.MaxConcurrent = 101; s.Budget.Windows = nil; s.Budget.DefaultMbps = 0 },
			[]fieldCode{{"max_concurrent", ErrMaxConcurrent.Code}}},
		{"max_concurrent 100", func(s *Spec) { s.MaxConcurrent = 100 }, nil},
		{"six windows", func(s *Spec) {
			s.Budget.Windows = nil
			for h := 0; h < 6; h++ {
				s.Budget.Windows = append(s.Budget.Windows, TimeWindow{Start: fmt.Sprintf("%02d:00", h), End: fmt.Sprintf("%02d:30", h), Mbps: 10})
			}
		}, []fieldCode{{"bandwidth_budget.windows", ErrTooManyWindows.Code}}},
		{"mbps too high", func(s *Spec) { s.Budget.Windows[1].Mbps = MaxBudgetMbps + 1 }, []fieldCode{{"bandwidth_budget.windows[1].mbps", ErrBandwidth.Code}}},
		{"negative default", func(s *Spec) { s.Budget.DefaultMbps = -1 }, []fieldCode{{"bandwidth_budget.default_mbps", ErrBandwidth.Code}}},
		{"budget under one Mbit/s a member", func(s *Spec) { s.Budget.DefaultMbps = 4 }, []fieldCode{{"bandwidth_budget.default_mbps", ErrBandwidth.Code}}},
		{"budget of exactly one a member", func(s *Spec) { s.Budget.DefaultMbps = 5 }, nil},
		{"unlimited", func(s *Spec) { s.Budget = Budget{} }, nil},
		{"overlap on a shared weekday", func(s *Spec) {
			s.Budget.Windows = append(s.Budget.Windows, TimeWindow{Start: "17:00", End: "19:00", Weekdays: []Weekday{Friday}, Mbps: 50})
		}, []fieldCode{{"bandwidth_budget.windows[2]", ErrWindowsOverlap.Code}}},
		{"same hours on other days do not overlap", func(s *Spec) {
			s.Budget.Windows = append(s.Budget.Windows, TimeWindow{Start: "09:00", End: "17:00", Weekdays: []Weekday{Saturday, Sunday}, Mbps: 50})
		}, nil},
		{"crossing part overlaps the next morning", func(s *Spec) {
			s.Budget.Windows = []TimeWindow{
				{Start: "22:00", End: "02:00", Weekdays: []Weekday{Saturday}, Mbps: 50},
				{Start: "01:00", End: "03:00", Weekdays: []Weekday{Sunday}, Mbps: 60},
			}
		}, []fieldCode{{"bandwidth_budget.windows[1]", ErrWindowsOverlap.Code}}},
		{"saturday night wraps into sunday", func(s *Spec) {
			s.Budget.Windows = []TimeWindow{
				{Start: "01:00", End: "03:00", Weekdays: []Weekday{Sunday}, Mbps: 60},
				{Start: "23:00", End: "01:30", Weekdays: []Weekday{Saturday}, Mbps: 50},
			}
		}, []fieldCode{{"bandwidth_budget.windows[1]", ErrWindowsOverlap.Code}}},
		{"touching windows do not overlap", func(s *Spec) {
			s.Budget.Windows = []TimeWindow{{Start: "00:00", End: "12:00", Mbps: 50}, {Start: "12:00", End: "24:00", Mbps: 60}}
		}, nil},
		{"bad clock", func(s *Spec) { s.Budget.Windows[0].End = "18:60" }, []fieldCode{{"bandwidth_budget.windows[0].end", ErrClock.Code}}},
		{"start 24:00", func(s *Spec) { s.Budget.Windows[0].Start = "24:00" }, []fieldCode{{"bandwidth_budget.windows[0].start", ErrClock.Code}}},
		{"empty window", func(s *Spec) { s.Budget.Windows[0].End = "08:00" }, []fieldCode{{"bandwidth_budget.windows[0].end", ErrWindowNoTime.Code}}},
		{"bad weekday", func(s *Spec) { s.Budget.Windows[0].Weekdays[0] = "Montag" }, []fieldCode{{"bandwidth_budget.windows[0].weekdays[0]", ErrInvalid.Code}}},
		{"weekday twice", func(s *Spec) { s.Budget.Windows[0].Weekdays[1] = "mon" }, []fieldCode{{"bandwidth_budget.windows[0].weekdays[1]", ErrInvalid.Code}}},
		{"no zone", func(s *Spec) { s.TimeZone = "" }, []fieldCode{{"time_zone", ErrTimeZone.Code}}},
		{"Local zone", func(s *Spec) { s.TimeZone = "Local" }, []fieldCode{{"time_zone", ErrTimeZone.Code}}},
		{"unknown zone", func(s *Spec) { s.TimeZone = "Europe/Atlantis" }, []fieldCode{{"time_zone", ErrTimeZone.Code}}},
		{"cutover window with no time", func(s *Spec) { s.CutoverWindows = []TimeWindow{{Weekdays: []Weekday{Saturday}}} },
			[]fieldCode{{"cutover_windows[0]", ErrWindowNoTime.Code}}},
		{"cutover window without end", func(s *Spec) { s.CutoverWindows[0].End = "" },
			[]fieldCode{{"cutover_windows[0].end", ErrWindowNoTime.Code}}},
		{"cutover window with bandwidth", func(s *Spec) { s.CutoverWindows[0].Mbps = 5 },
			[]fieldCode{{"cutover_windows[0].mbps", ErrInvalid.Code}}},
		{"no cutover windows", func(s *Spec) { s.CutoverWindows = nil }, nil},
		{"too many cutover windows", func(s *Spec) {
			for i := 0; i < MaxCutoverWindows; i++ {
				s.CutoverWindows = append(s.CutoverWindows, TimeWindow{Start: "01:00", End: "02:00"})
			}
		}, []fieldCode{{"cutover_windows", ErrTooManyWindows.Code}}},
		{"bad mode", func(s *Spec) { s.CutoverMode = "manual" }, []fieldCode{{"cutover_mode", ErrInvalid.Code}}},
		{"long depends_on", func(s *Spec) { s.DependsOn = strings.Repeat("w", 65) }, []fieldCode{{"depends_on", ErrInvalid.Code}}},
		{"negative max_failures", func(s *Spec) { s.MaxFailures = -1 }, []fieldCode{{"max_failures", ErrInvalid.Code}}},
		{"duplicate source id", func(s *Spec) { s.Members = append(s.Members, Member{SourceID: "src-1"}) },
			[]fieldCode{{"members[3]", ErrDuplicateMember.Code}}},
		{"duplicate name ignores case", func(s *Spec) { s.Members = append(s.Members, Member{Name: "WEB-02"}) },
			[]fieldCode{{"members[3]", ErrDuplicateMember.Code}}},
		{"duplicate ip in another spelling", func(s *Spec) { s.Members = append(s.Members, Member{IP: "::ffff:10.0.0.3"}) },
			[]fieldCode{{"members[3]", ErrDuplicateMember.Code}}},
		{"member without a source", func(s *Spec) { s.Members[0] = Member{TargetName: "x"} }, []fieldCode{{"members[0]", ErrInvalid.Code}}},
		{"member bad ip", func(s *Spec) { s.Members[2].IP = "10.0.0.300" }, []fieldCode{{"members[2].ip", ErrInvalid.Code}}},
		{"member priority 3", func(s *Spec) { s.Members[0].Priority = new(int32(3)) }, []fieldCode{{"members[0].priority", ErrInvalid.Code}}},
		{"member disk 0 GiB", func(s *Spec) { s.Members[1].DiskSizesGiB[1] = 0 }, []fieldCode{{"members[1].disk_sizes_gib[1]", ErrInvalid.Code}}},
		{"too many members", func(s *Spec) { s.Members = make([]Member, MaxMembers+1) }, []fieldCode{{"members", ErrTooManyMembers.Code}}},
		{"no members is a draft", func(s *Spec) { s.Members = nil }, nil},
		{"every problem at once", func(s *Spec) { s.Name = ""; s.MaxConcurrent = 0; s.TimeZone = "x"; s.CutoverMode = "" },
			[]fieldCode{{"name", ErrInvalid.Code}, {"max_concurrent", ErrMaxConcurrent.Code}, {"time_zone", ErrTimeZone.Code}, {"cutover_mode", ErrInvalid.Code}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodSpec()
			tt.change(&s)
			var got []fieldCode
			for _, p := range Validate(s, testNow) {
				got = append(got, fieldCode{p.Field, p.Code})
				if p.Msg == "" {
					t.Errorf("%s: no message", p.Field)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestSpecJSON pins the wire names the API will show.
func TestSpecJSON(t *testing.T) {
	b, err := json.Marshal(goodSpec())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"name"`, `"project_id"`, `"task_defaults"`, `"start_target_server"`, `"start_at"`, `"max_concurrent"`,
		`"bandwidth_budget"`, `"default_mbps"`, `"windows"`, `"weekdays":["MON"`, `"time_zone"`, `"cutover_windows"`,
		`"cutover_mode":"approve"`, `"test_first"`, `"max_failures"`, `"disk_sizes_gib":[40,100]`, `"target_name"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s missing from %s", k, b)
		}
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, goodSpec()) {
		t.Errorf("round trip changed the spec:\n%+v\n%+v", back, goodSpec())
	}
}

func TestFindCycle(t *testing.T) {
	deps := map[string]string{"a": "b", "b": "c", "c": "", "x": "y", "y": "x"}
	tests := []struct {
		id, on string
		want   []string
	}{
		{"new", "a", nil},
		{"new", "", nil},
		{"c", "a", []string{"c", "a", "b", "c"}}, // c would depend on a, which reaches c
		{"a", "a", []string{"a", "a"}},
		{"new", "x", []string{"new", "x", "y", "x"}}, // a loop among the others ends too
		{"new", "missing", nil},
	}
	for _, tt := range tests {
		if got := FindCycle(tt.id, tt.on, deps); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("FindCycle(%s, %s) = %v, want %v", tt.id, tt.on, got, tt.want)
		}
	}
}

func TestOrderMembers(t *testing.T) {
	ms := []Member{
		{Name: "a"}, {Name: "b", Priority: new(int32(2))}, {Name: "c", Priority: new(int32(0))},
		{Name: "d", Priority: new(int32(1))}, {Name: "e", Priority: new(int32(2))}, {Name: "f", Priority: new(int32(7))},
	}
	if got, want := OrderMembers(ms), []int{1, 4, 0, 3, 2, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// FuzzValidate decodes a spec from JSON and runs everything that reads its
// windows: no panic, and a spec Validate accepts has a loadable zone and
// answers BudgetAt and NextCutover with times after now.
func FuzzValidate(f *testing.F) {
	b, _ := json.Marshal(goodSpec())
	f.Add(b)
	f.Add([]byte(`{"time_zone":"America/New_York","max_concurrent":1,"cutover_mode":"auto","name":"n","project_id":"p",` +
		`"bandwidth_budget":{"windows":[{"start":"23:00","end":"00:30","weekdays":["SAT"],"mbps":9}]},` +
		`"cutover_windows":[{"start":"2:00","end":"3:00","weekdays":["sun"]}]}`))
	f.Add([]byte(`{"bandwidth_budget":{"windows":[{"start":"24:00","end":"24:00"},{"start":"-1:00"}]},"time_zone":"Local"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		ps := Validate(s, testNow)
		for _, p := range ps {
			if p.Field == "" || p.Code == "" || p.Msg == "" {
				t.Fatalf("incomplete problem %+v", p)
			}
		}
		loc, err := LoadZone(s.TimeZone)
		if err != nil {
			if len(ps) == 0 {
				t.Fatalf("zone %q refused but spec valid", s.TimeZone)
			}
			loc = time.UTC
		}
		mbps, next := BudgetAt(s.Budget, loc, testNow)
		if !next.IsZero() && !next.After(testNow) {
			t.Fatalf("next %s not after now", next)
		}
		if len(ps) == 0 && (mbps < 0 || mbps > MaxBudgetMbps) {
			t.Fatalf("budget %d", mbps)
		}
		start, end, ok := NextCutover(s.CutoverWindows, loc, testNow)
		if ok && (start.Before(testNow) || (!end.IsZero() && !end.After(start))) {
			t.Fatalf("cutover %s..%s", start, end)
		}
	})
}
