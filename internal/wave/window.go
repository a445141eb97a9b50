package wave

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	// Zones load from the binary when the host has no zoneinfo (distroless
	// images, Windows): a wave's windows must mean the same on every worker.
	_ "time/tzdata"

	"github.com/smsflow/smsflow/internal/sms/speedlimit"
)

// Weekday is a day of the week as the API spells it: MON ... SUN.
type Weekday string

// The weekdays.
const (
	Monday    Weekday = "MON"
	Tuesday   Weekday = "TUE"
	Wednesday Weekday = "WED"
	Thursday  Weekday = "THU"
	Friday    Weekday = "FRI"
	Saturday  Weekday = "SAT"
	Sunday    Weekday = "SUN"
)

var weekdays = map[Weekday]time.Weekday{
	Monday: time.Monday, Tuesday: time.Tuesday, Wednesday: time.Wednesday, Thursday: time.Thursday,
	Friday: time.Friday, Saturday: time.Saturday, Sunday: time.Sunday,
}

// TimeWindow is a daily time range "HH:MM"-"HH:MM" on some weekdays, read
// in the wave's time zone. Start is inclusive, End exclusive; End may be
// "24:00". An End earlier than Start means the window crosses midnight: it
// runs from Start on each listed weekday until End on the next day
// ("22:00"-"06:00" on FRI is Friday 22:00 to Saturday 06:00). Start equal to
// End is refused (a whole day is "00:00"-"24:00"). No weekdays means every
// day. Bandwidth windows carry Mbps; cutover windows leave it out.
//
// Times are wall-clock times: on the night clocks spring forward a bound
// inside the skipped hour moves forward by the gap (02:30 is 03:30), so
// 02:00-03:00 does not occur that night and 02:30-04:00 runs 03:30-04:00;
// on the night they fall back a bound inside the repeated hour is its first
// occurrence, so 01:00-03:00 lasts three hours then.
type TimeWindow struct {
	Start    string    `json:"start"`
	End      string    `json:"end"`
	Weekdays []Weekday `json:"weekdays,omitempty"`
	Mbps     int32     `json:"mbps,omitempty"`
}

// window is a TimeWindow read: minutes since midnight and a weekday set.
type window struct {
	from, to int     // to <= from: crosses midnight
	days     [7]bool // by time.Weekday
	mbps     int32
}

// parseWindow reads w. Its errors are Problems under field (the window's path).
func parseWindow(w TimeWindow, field string) (window, []Problem) {
	var ps []Problem
	var out window
	if strings.TrimSpace(w.Start) == "" && strings.TrimSpace(w.End) == "" {
		return out, []Problem{{field, ErrWindowNoTime.Code, "has no time range: start and end are required (HH:MM)"}}
	}
	from, err := parseClock(w.Start, field+".start")
	if err != nil {
		ps = append(ps, *err)
	}
	to, err2 := parseClock(w.End, field+".end")
	if err2 != nil {
		ps = append(ps, *err2)
	}
	if err == nil && err2 == nil {
		if from == 24*60 {
			ps = append(ps, Problem{field + ".start", ErrClock.Code, "must be before 24:00"})
		} else if from == to {
			ps = append(ps, Problem{field + ".end", ErrWindowNoTime.Code, "must differ from start (a whole day is 00:00-24:00)"})
		}
	}
	seen := map[Weekday]bool{}
	for i, d := range w.Weekdays {
		wd, ok := weekdays[Weekday(strings.ToUpper(string(d)))]
		f := fmt.Sprintf("%s.weekdays[%d]", field, i)
		switch {
		case !ok:
			ps = append(ps, Problem{f, ErrInvalid.Code, fmt.Sprintf("unknown weekday %q: use MON, TUE, WED, THU, FRI, SAT or SUN", d)})
		case seen[Weekday(strings.ToUpper(string(d)))]:
			ps = append(ps, Problem{f, ErrInvalid.Code, fmt.Sprintf("weekday %s is listed twice", d)})
		default:
			seen[Weekday(strings.ToUpper(string(d)))] = true
			out.days[wd] = true
		}
	}
	if len(w.Weekdays) == 0 {
		out.days = [7]bool{true, true, true, true, true, true, true}
	}
	out.from, out.to, out.mbps = from, to, w.Mbps
	if to == 24*60 {
		// 24:00 is the next day's midnight; as a crossing window ending at
		// 00:00 it needs no special case below.
		out.to = 0
	}
	return out, ps
}

// parseClock reads "HH:MM" with speedlimit's parser, so waves and task
// speed windows accept the same spellings (H:MM too, up to 24:00).
func parseClock(s, field string) (int, *Problem) {
	if strings.TrimSpace(s) == "" {
		return 0, &Problem{field, ErrWindowNoTime.Code, "is required (HH:MM)"}
	}
	m, err := speedlimit.ParseClock(s)
	if err != nil {
		return 0, &Problem{field, ErrClock.Code, err.Error()}
	}
	return m, nil
}

// occurrence is one window instance in absolute time, [start, end).
type occurrence struct {
	start, end time.Time
	idx        int // the window's position in its list
	mbps       int32
}

// occurrences lists every instance of ws that starts on a local day from
// t's day - 1 to t's day + 8, sorted by start then list position. That is
// enough for any question about t: a window lasts at most a day and each
// one recurs at least weekly. Instances emptied by a DST gap are dropped.
func occurrences(ws []window, loc *time.Location, t time.Time) []occurrence {
	lt := t.In(loc)
	var out []occurrence
	for d := -1; d <= 8; d++ {
		// A civil date (time.Date normalizes the day number); bounds are
		// built from wall clocks, so a day with a DST change keeps 22:00
		// at 22:00.
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+d, 0, 0, 0, 0, time.UTC)
		for i, w := range ws {
			if !w.days[day.Weekday()] {
				continue
			}
			start := wallTime(day.Add(time.Duration(w.from)*time.Minute), loc)
			endMin := w.to
			if w.to <= w.from {
				endMin += 24 * 60
			}
			end := wallTime(day.Add(time.Duration(endMin)*time.Minute), loc)
			if !end.After(start) {
				continue
			}
			out = append(out, occurrence{start: start, end: end, idx: i, mbps: w.mbps})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].start.Equal(out[j].start) {
			return out[i].start.Before(out[j].start)
		}
		return out[i].idx < out[j].idx
	})
	return out
}

// wallTime is the instant a wall clock reading (given as a UTC time whose
// fields are the reading) shows in loc. time.Date leaves the two DST cases
// unspecified (and really answers differently for Europe/Berlin and
// America/New_York), so they are decided here: a reading in the skipped
// hour is moved forward by the gap (02:30 on a spring-forward night is
// 03:30), and a reading in the repeated hour is its first occurrence (the
// one in summer time), as in RFC 5545 and java.time.
func wallTime(wall time.Time, loc *time.Location) time.Time {
	offsetAt := func(t time.Time) int { _, o := t.In(loc).Zone(); return o }
	// Offsets are within ±14 h, so a day either side brackets the instant
	// and, zones changing at most once a day, the offsets before and after.
	before, after := offsetAt(wall.Add(-24*time.Hour)), offsetAt(wall.Add(24*time.Hour))
	var best time.Time
	for _, o := range []int{before, after} {
		c := wall.Add(-time.Duration(o) * time.Second)
		if offsetAt(c) == o && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	if best.IsZero() {
		// In the gap: read with the offset in force before it.
		best = wall.Add(-time.Duration(before) * time.Second)
	}
	return best.In(loc)
}

// parseWindows reads the windows that parse and drops the others: the pure
// functions take what Validate accepted and must not fail on the rest.
func parseWindows(tw []TimeWindow) []window {
	var ws []window
	for _, w := range tw {
		if p, errs := parseWindow(w, ""); len(errs) == 0 {
			ws = append(ws, p)
		}
	}
	return ws
}

// LoadZone loads a wave's time zone by IANA name. The empty name and
// "Local" are refused: they would mean UTC or whatever zone each worker's
// host is in, and a wave's windows must mean one thing everywhere.
func LoadZone(name string) (*time.Location, error) {
	if strings.TrimSpace(name) == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q: an IANA name such as Europe/Berlin is required", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	return loc, nil
}

// ResolveZone names a configured time zone the way a workflow input must:
// an IANA name that loads on any worker. "" and "Local" mean the machine's
// zone, named from TZ, the /etc/localtime link or /etc/timezone; a run that
// read "Local" would read it on whichever worker replays it, which is not
// deterministic. A zone that cannot be named or loaded is an error, for the
// API to refuse (SMS.8509) rather than a run to read as UTC.
func ResolveZone(name string) (string, error) {
	if strings.TrimSpace(name) == "" || name == "Local" {
		local, err := localZoneName()
		if err != nil {
			return "", err
		}
		name = local
	}
	if _, err := LoadZone(name); err != nil {
		return "", err
	}
	return name, nil
}

// zoneFiles are where localZoneName looks (variables for the tests).
var zoneFiles = struct{ localtime, timezone string }{"/etc/localtime", "/etc/timezone"}

// localZoneName is the IANA name of the machine's zone, read as Go reads
// time.Local: TZ first ("" is UTC), then /etc/localtime (absent is UTC).
func localZoneName() (string, error) {
	if tz, ok := os.LookupEnv("TZ"); ok {
		tz = strings.TrimPrefix(tz, ":")
		if tz == "" {
			return "UTC", nil
		}
		if name, ok := zoneInPath(tz); ok {
			return name, nil
		}
		return tz, nil
	}
	link, err := os.Readlink(zoneFiles.localtime)
	switch {
	case err == nil:
		if name, ok := zoneInPath(link); ok {
			return name, nil
		}
	case errors.Is(err, fs.ErrNotExist):
		return "UTC", nil
	}
	// A copied zone file, not a link: Debian-like systems name it here.
	if b, err := os.ReadFile(zoneFiles.timezone); err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	}
	return "", errors.New("time zone \"Local\": the machine's zone has no IANA name here; set --timezone (SMSFLOW_TIMEZONE) to one such as Europe/Berlin")
}

// zoneInPath reads the IANA name out of a zoneinfo file path.
func zoneInPath(p string) (string, bool) {
	const dir = "zoneinfo/"
	if i := strings.LastIndex(p, dir); i >= 0 && i+len(dir) < len(p) {
		return p[i+len(dir):], true
	}
	return "", false
}

// Budget is a wave's bandwidth budget in Mbit/s for the whole wave: the
// first window that holds the moment applies, the default outside every
// window. 0 means unlimited, as in a task's speed limit.
type Budget struct {
	DefaultMbps int32        `json:"default_mbps"`
	Windows     []TimeWindow `json:"windows,omitempty"`
}

// BudgetAt returns the budget in force at t, with the windows read in loc,
// and the next moment it may change (a window bound after t). next is the
// zero time when the budget has no usable window and so never changes.
// Windows that do not parse are ignored (Validate refuses them).
func BudgetAt(b Budget, loc *time.Location, t time.Time) (mbps int32, next time.Time) {
	ws := parseWindows(b.Windows)
	mbps = b.DefaultMbps
	found := false
	for _, o := range occurrences(ws, loc, t) {
		if !found && !t.Before(o.start) && t.Before(o.end) {
			mbps, found = o.mbps, true
		}
		for _, bd := range []time.Time{o.start, o.end} {
			if bd.After(t) && (next.IsZero() || bd.Before(next)) {
				next = bd
			}
		}
	}
	if !next.IsZero() {
		next = next.UTC()
	}
	return mbps, next
}

// NextCutover answers when a cutover may run: when t is inside a cutover
// window, (t, that window's end, true); else the next window's (start, end,
// true). Overlapping or touching windows count as one. No windows at all
// means a cutover may run at any time: (t, zero time, true). ok is false
// only when windows exist but none occurs (each emptied by a DST gap or
// unparsable). Times come back in UTC. Windows that join into one unbroken
// stretch (00:00-24:00 every day) report an end about nine days away, the
// horizon looked at; the caller asks again then.
func NextCutover(windows []TimeWindow, loc *time.Location, t time.Time) (start, end time.Time, ok bool) {
	if len(windows) == 0 {
		return t.UTC(), time.Time{}, true
	}
	occ := occurrences(parseWindows(windows), loc, t)
	for i := 0; i < len(occ); i++ {
		s, e := occ[i].start, occ[i].end
		for i+1 < len(occ) && !occ[i+1].start.After(e) {
			i++
			if occ[i].end.After(e) {
				e = occ[i].end
			}
		}
		if !e.After(t) {
			continue
		}
		if s.Before(t) {
			s = t
		}
		return s.UTC(), e.UTC(), true
	}
	return time.Time{}, time.Time{}, false
}
