package wave

import (
	"os"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at parses "2006-01-02 15:04 MST"-like RFC 3339 instants for tables.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWallTime(t *testing.T) {
	tests := []struct {
		zone, wall, want string
	}{
		// Ordinary times.
		{"Europe/Berlin", "2026-03-02T10:00:00Z", "2026-03-02T09:00:00Z"},
		// Spring forward: the skipped hour moves forward by the gap, in
		// both zones (time.Date moves New York's backward).
		{"Europe/Berlin", "2026-03-29T02:30:00Z", "2026-03-29T01:30:00Z"},    // 03:30 CEST
		{"Europe/Berlin", "2026-03-29T02:00:00Z", "2026-03-29T01:00:00Z"},    // 03:00 CEST
		{"America/New_York", "2026-03-08T02:00:00Z", "2026-03-08T07:00:00Z"}, // 03:00 EDT
		{"America/New_York", "2026-03-08T02:30:00Z", "2026-03-08T07:30:00Z"}, // 03:30 EDT
		// Fall back: the repeated hour's first occurrence, in both zones
		// (time.Date picks Berlin's second).
		{"Europe/Berlin", "2026-10-25T02:30:00Z", "2026-10-25T00:30:00Z"},    // 02:30 CEST
		{"America/New_York", "2026-11-01T01:30:00Z", "2026-11-01T05:30:00Z"}, // 01:30 EDT
		// Just after the repeated hour.
		{"Europe/Berlin", "2026-10-25T03:00:00Z", "2026-10-25T02:00:00Z"},
		// Half-hour zone, no DST.
		{"Asia/Kolkata", "2026-06-01T00:00:00Z", "2026-05-31T18:30:00Z"},
	}
	for _, tt := range tests {
		got := wallTime(at(t, tt.wall), mustZone(t, tt.zone))
		if !got.Equal(at(t, tt.want)) {
			t.Errorf("%s %s: got %s, want %s", tt.zone, tt.wall, got.UTC(), tt.want)
		}
	}
}

func TestBudgetAt(t *testing.T) {
	office := Budget{DefaultMbps: 1000, Windows: []TimeWindow{
		{Start: "09:00", End: "17:00", Weekdays: []Weekday{Monday, Tuesday, Wednesday, Thursday, Friday}, Mbps: 100},
		{Start: "22:00", End: "06:00", Weekdays: []Weekday{Friday}, Mbps: 5000}, // Friday night into Saturday
	}}
	night := Budget{DefaultMbps: 0, Windows: []TimeWindow{{Start: "01:00", End: "04:00", Mbps: 10}}}
	fallNight := Budget{DefaultMbps: 0, Windows: []TimeWindow{{Start: "00:00", End: "02:30", Mbps: 10}}}
	allDay := Budget{DefaultMbps: 7, Windows: []TimeWindow{{Start: "00:00", End: "24:00", Weekdays: []Weekday{Sunday}, Mbps: 3}}}
	tests := []struct {
		name     string
		b        Budget
		zone     string
		t        string
		want     int32
		wantNext string
	}{
		{"office hours", office, "Europe/Berlin", "2026-03-02T09:00:00Z", 100, "2026-03-02T16:00:00Z"},
		{"start is inclusive", office, "Europe/Berlin", "2026-03-02T08:00:00Z", 100, "2026-03-02T16:00:00Z"},
		{"end is exclusive", office, "Europe/Berlin", "2026-03-02T16:00:00Z", 1000, "2026-03-03T08:00:00Z"},
		{"before office hours", office, "Europe/Berlin", "2026-03-02T05:00:00Z", 1000, "2026-03-02T08:00:00Z"},
		{"friday evening waits for the night", office, "Europe/Berlin", "2026-03-06T17:00:00Z", 1000, "2026-03-06T21:00:00Z"},
		{"friday night crosses into saturday", office, "Europe/Berlin", "2026-03-07T02:00:00Z", 5000, "2026-03-07T05:00:00Z"},
		{"saturday after the night: next is monday", office, "Europe/Berlin", "2026-03-07T06:00:00Z", 1000, "2026-03-09T08:00:00Z"},
		{"thursday night is not friday's", office, "Europe/Berlin", "2026-03-05T22:30:00Z", 1000, "2026-03-06T08:00:00Z"},
		// Spring forward in Berlin: 01:00 CET to 04:00 CEST is two real hours.
		{"dst spring before", night, "Europe/Berlin", "2026-03-28T23:30:00Z", 0, "2026-03-29T00:00:00Z"},
		{"dst spring inside", night, "Europe/Berlin", "2026-03-29T00:30:00Z", 10, "2026-03-29T02:00:00Z"},
		{"dst spring after", night, "Europe/Berlin", "2026-03-29T02:00:00Z", 0, "2026-03-29T23:00:00Z"},
		// Fall back: 02:30 is its first occurrence (CEST).
		{"dst fall inside", fallNight, "Europe/Berlin", "2026-10-25T00:15:00Z", 10, "2026-10-25T00:30:00Z"},
		{"dst fall repeated hour is outside", fallNight, "Europe/Berlin", "2026-10-25T01:15:00Z", 0, "2026-10-25T23:00:00Z"},
		// New York, spring forward night.
		{"new york spring", night, "America/New_York", "2026-03-08T06:30:00Z", 10, "2026-03-08T08:00:00Z"},
		{"24:00 ends at midnight", allDay, "UTC", "2026-03-08T23:59:00Z", 3, "2026-03-09T00:00:00Z"},
		{"all-day sunday from saturday", allDay, "UTC", "2026-03-07T12:00:00Z", 7, "2026-03-08T00:00:00Z"},
		{"no windows never changes", Budget{DefaultMbps: 42}, "UTC", "2026-03-07T12:00:00Z", 42, ""},
		{"an unparsable window is ignored", Budget{DefaultMbps: 42, Windows: []TimeWindow{{Start: "25:00", End: "26:00", Mbps: 1}}},
			"UTC", "2026-03-07T12:00:00Z", 42, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := BudgetAt(tt.b, mustZone(t, tt.zone), at(t, tt.t))
			if got != tt.want {
				t.Errorf("mbps = %d, want %d", got, tt.want)
			}
			if tt.wantNext == "" {
				if !next.IsZero() {
					t.Errorf("next = %s, want none", next)
				}
			} else if !next.Equal(at(t, tt.wantNext)) {
				t.Errorf("next = %s, want %s", next, tt.wantNext)
			}
		})
	}
}

func TestNextCutover(t *testing.T) {
	satNight := []TimeWindow{{Start: "23:00", End: "03:00", Weekdays: []Weekday{Saturday}}}
	gap := []TimeWindow{{Start: "02:00", End: "03:00", Weekdays: []Weekday{Sunday}}}
	repeated := []TimeWindow{{Start: "02:30", End: "04:00", Weekdays: []Weekday{Sunday}}}
	touching := []TimeWindow{{Start: "20:00", End: "22:00"}, {Start: "22:00", End: "23:00"}, {Start: "21:00", End: "21:30"}}
	tests := []struct {
		name             string
		ws               []TimeWindow
		zone, t          string
		wantStart, wantE string
		wantOK           bool
	}{
		{"before the window", satNight, "Europe/Berlin", "2026-03-07T12:00:00Z", "2026-03-07T22:00:00Z", "2026-03-08T02:00:00Z", true},
		{"inside, after midnight", satNight, "Europe/Berlin", "2026-03-08T01:00:00Z", "2026-03-08T01:00:00Z", "2026-03-08T02:00:00Z", true},
		{"at the end: next week", satNight, "Europe/Berlin", "2026-03-08T02:00:00Z", "2026-03-14T22:00:00Z", "2026-03-15T02:00:00Z", true},
		// Berlin spring forward: Saturday 23:00 CET to Sunday 03:00 CEST is 3 h.
		{"berlin spring night", satNight, "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-28T22:00:00Z", "2026-03-29T01:00:00Z", true},
		// Berlin fall back: Saturday 23:00 CEST to Sunday 03:00 CET is 5 h.
		{"berlin fall night", satNight, "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-24T21:00:00Z", "2026-10-25T02:00:00Z", true},
		{"berlin fall, in the repeated hour", satNight, "Europe/Berlin", "2026-10-25T01:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z", true},
		// New York: a window wholly in the skipped hour does not occur that
		// night; the next Sunday's does.
		{"new york gap night skipped", gap, "America/New_York", "2026-03-08T05:00:00Z", "2026-03-15T06:00:00Z", "2026-03-15T07:00:00Z", true},
		{"new york fall night", satNight, "America/New_York", "2026-10-31T16:00:00Z", "2026-11-01T03:00:00Z", "2026-11-01T08:00:00Z", true},
		// Berlin fall: 02:30 is the first (CEST) 02:30, 04:00 CET: 2.5 h.
		{"berlin repeated hour start", repeated, "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T03:00:00Z", true},
		{"touching windows join", touching, "UTC", "2026-03-02T19:00:00Z", "2026-03-02T20:00:00Z", "2026-03-02T23:00:00Z", true},
		{"inside joined windows", touching, "UTC", "2026-03-02T21:15:00Z", "2026-03-02T21:15:00Z", "2026-03-02T23:00:00Z", true},
		{"no windows: any time", nil, "UTC", "2026-03-02T21:15:00Z", "2026-03-02T21:15:00Z", "", true},
		{"nothing parses", []TimeWindow{{Start: "x"}}, "UTC", "2026-03-02T21:15:00Z", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e, ok := NextCutover(tt.ws, mustZone(t, tt.zone), at(t, tt.t))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			check := func(what string, got time.Time, want string) {
				if want == "" {
					if !got.IsZero() {
						t.Errorf("%s = %s, want zero", what, got)
					}
					return
				}
				if !got.Equal(at(t, want)) {
					t.Errorf("%s = %s, want %s", what, got, want)
				}
			}
			check("start", s, tt.wantStart)
			check("end", e, tt.wantE)
		})
	}
}

// TestNextCutoverInsideAlways checks the promise the workflow relies on:
// the start it is told to wait for is inside a window, for every quarter
// hour of a year in a DST zone.
func TestNextCutoverInsideAlways(t *testing.T) {
	loc := mustZone(t, "America/New_York")
	ws := []TimeWindow{
		{Start: "23:00", End: "03:00", Weekdays: []Weekday{Saturday}},
		{Start: "01:30", End: "02:15", Weekdays: []Weekday{Sunday, Wednesday}},
	}
	parsed := parseWindows(ws)
	for tm := at(t, "2026-01-01T00:00:00Z"); tm.Before(at(t, "2027-01-01T00:00:00Z")); tm = tm.Add(15 * time.Minute) {
		s, e, ok := NextCutover(ws, loc, tm)
		if !ok || s.Before(tm) || !e.After(s) || s.Sub(tm) > 8*24*time.Hour {
			t.Fatalf("at %s: %s..%s ok=%v", tm, s, e, ok)
		}
		inside := false
		for _, o := range occurrences(parsed, loc, s) {
			if !s.Before(o.start) && s.Before(o.end) {
				inside = true
			}
		}
		if !inside {
			t.Fatalf("at %s: start %s is in no window", tm, s)
		}
	}
}

func TestLoadZone(t *testing.T) {
	for _, bad := range []string{"", "Local", "Mars/Olympus", " "} {
		if _, err := LoadZone(bad); err == nil {
			t.Errorf("LoadZone(%q) accepted", bad)
		}
	}
	for _, good := range []string{"UTC", "Europe/Berlin", "Asia/Shanghai"} {
		if _, err := LoadZone(good); err != nil {
			t.Errorf("LoadZone(%q): %v", good, err)
		}
	}
}

// TestResolveZone: "Local" and "" become the machine's IANA name, read from
// TZ or the zone files as Go reads them; a name that does not load, or a
// machine zone with no name, is an error, never UTC.
func TestResolveZone(t *testing.T) {
	dir := t.TempDir()
	link := dir + "/localtime"
	if err := os.Symlink("/usr/share/zoneinfo/America/Sao_Paulo", link); err != nil {
		t.Fatal(err)
	}
	copied := dir + "/copied"
	if err := os.WriteFile(copied, []byte("TZif"), 0o644); err != nil {
		t.Fatal(err)
	}
	named := dir + "/timezone"
	if err := os.WriteFile(named, []byte("Asia/Kolkata\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unset := "\x00unset"
	for _, c := range []struct {
		name, tz, localtime, timezone string
		want                          string // "" = an error
	}{
		{"Europe/Berlin", unset, link, named, "Europe/Berlin"},
		{"Local", "Asia/Shanghai", link, named, "Asia/Shanghai"},
		{"Local", ":/usr/share/zoneinfo/Africa/Cairo", link, named, "Africa/Cairo"},
		{"Local", "", link, named, "UTC"},
		{"Local", unset, link, named, "America/Sao_Paulo"},
		{"", unset, link, named, "America/Sao_Paulo"},
		{"Local", unset, dir + "/missing", named, "UTC"},
		{"Local", unset, copied, named, "Asia/Kolkata"},
		{"Local", unset, copied, dir + "/missing", ""},
		{"Local", "CST-8", link, named, ""},
		{"Mars/Olympus", unset, link, named, ""},
	} {
		t.Run(c.name+"/"+c.tz+"/"+c.localtime, func(t *testing.T) {
			if c.tz == unset {
				t.Setenv("TZ", "")
				if err := os.Unsetenv("TZ"); err != nil {
					t.Fatal(err)
				}
			} else {
				t.Setenv("TZ", c.tz)
			}
			saved := zoneFiles
			zoneFiles.localtime, zoneFiles.timezone = c.localtime, c.timezone
			t.Cleanup(func() { zoneFiles = saved })
			got, err := ResolveZone(c.name)
			if c.want == "" {
				if err == nil {
					t.Fatalf("ResolveZone(%q) = %q, want an error", c.name, got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ResolveZone(%q) = %q, %v; want %q", c.name, got, err, c.want)
			}
		})
	}
}
