// Package speedlimit turns a task's time-windowed speed rules into the limit
// in force at a given time and the next time it changes. It is pure and
// deterministic: the API validates rules with it and the migration workflow
// evaluates them with workflow.Now.
package speedlimit

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxWindows is the hosted service's limit on rules per task.
const MaxWindows = 5

// MaxSpeed is the largest limit, in Mbit/s.
const MaxSpeed = 10000

// Rule is a window as the API sends it: "HH:MM" bounds, end up to "24:00".
type Rule struct {
	Start              string
	End                string
	Speed              int32   // Mbit/s; 0 = no limit
	OverSpeedThreshold float64 // percent above the limit that stops the task
}

// Window is a validated rule in minutes since midnight, [From, To).
type Window struct {
	From, To  int
	Speed     int32
	Threshold float64
}

// Limit is what applies at a moment.
type Limit struct {
	Mbps      int32   // 0 = no limit
	Threshold float64 // percent; 0 = no over-speed check
}

// FieldError names the rule field a problem is in (speed_limit[i].start...).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ParseClock reads "HH:MM" (00:00 .. 24:00) into minutes since midnight.
func ParseClock(s string) (int, error) {
	// H:MM is accepted too: the spec's own example sends "0:00" and "8:00".
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !digits(h) || !digits(m) {
		return 0, fmt.Errorf("must be HH:MM")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("must be a time from 00:00 to 24:00")
	}
	return hh*60 + mm, nil
}

// Parse validates rules: at most MaxWindows, HH:MM bounds with start < end,
// speeds 0..MaxSpeed, thresholds 0..100, no two windows overlapping. The
// windows come back sorted by start.
func Parse(rules []Rule) ([]Window, []*FieldError) {
	var errs []*FieldError
	if len(rules) > MaxWindows {
		errs = append(errs, &FieldError{"speed_limit", fmt.Sprintf("at most %d windows", MaxWindows)})
	}
	ws := make([]Window, 0, len(rules))
	idx := make([]int, 0, len(rules))
	for i, r := range rules {
		f := fmt.Sprintf("speed_limit[%d].", i)
		from, err := ParseClock(r.Start)
		if err != nil {
			errs = append(errs, &FieldError{f + "start", err.Error()})
		}
		to, err2 := ParseClock(r.End)
		if err2 != nil {
			errs = append(errs, &FieldError{f + "end", err2.Error()})
		}
		if err == nil && err2 == nil && from >= to {
			errs = append(errs, &FieldError{f + "end", "must be later than start (windows do not cross midnight: split them)"})
		}
		if r.Speed < 0 || r.Speed > MaxSpeed {
			errs = append(errs, &FieldError{f + "speed", fmt.Sprintf("must be between 0 and %d Mbit/s", MaxSpeed)})
		}
		if r.OverSpeedThreshold < 0 || r.OverSpeedThreshold > 100 {
			errs = append(errs, &FieldError{f + "over_speed_threshold", "must be between 0 and 100"})
		}
		ws = append(ws, Window{From: from, To: to, Speed: r.Speed, Threshold: r.OverSpeedThreshold})
		idx = append(idx, i)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sort.Sort(byStart{ws, idx})
	for i := 1; i < len(ws); i++ {
		if ws[i].From < ws[i-1].To {
			errs = append(errs, &FieldError{fmt.Sprintf("speed_limit[%d]", idx[i]),
				fmt.Sprintf("overlaps speed_limit[%d]", idx[i-1])})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return ws, nil
}

type byStart struct {
	ws  []Window
	idx []int
}

func (b byStart) Len() int           { return len(b.ws) }
func (b byStart) Less(i, j int) bool { return b.ws[i].From < b.ws[j].From }
func (b byStart) Swap(i, j int) {
	b.ws[i], b.ws[j] = b.ws[j], b.ws[i]
	b.idx[i], b.idx[j] = b.idx[j], b.idx[i]
}

// At returns the limit in force at t (read in loc) and when it next changes:
// inside a window its speed applies, outside every window the default. The
// next change is the next window boundary, at most a day away.
func At(ws []Window, def Limit, t time.Time, loc *time.Location) (Limit, time.Time) {
	lt := t.In(loc)
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	// Boundaries are built with time.Date, not by adding minutes to
	// midnight, so days with a DST change still put 02:00 at 02:00.
	at := func(day time.Time, minute int) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), minute/60, minute%60, 0, 0, loc)
	}
	cur := def
	var next time.Time
	for _, w := range ws {
		from, to := at(midnight, w.From), at(midnight, w.To)
		if !lt.Before(from) && lt.Before(to) {
			cur = Limit{Mbps: w.Speed, Threshold: w.Threshold}
		}
		for _, b := range []time.Time{from, to} {
			if b.After(lt) && (next.IsZero() || b.Before(next)) {
				next = b
			}
		}
	}
	if next.IsZero() {
		// No boundary left today: the first window tomorrow, or tomorrow's
		// midnight when there are no windows (nothing changes; the caller
		// wakes once a day).
		tomorrow := midnight.AddDate(0, 0, 1)
		next = tomorrow
		if len(ws) > 0 {
			next = at(tomorrow, ws[0].From)
			if ws[0].From == 0 {
				next = tomorrow
			}
		}
	}
	return cur, next.UTC()
}

// Over tells whether a reported speed (Mbit/s) breaks the limit: above
// limit × (1 + threshold/100). No limit or no threshold never breaks.
func Over(l Limit, mbps float64) bool {
	if l.Mbps <= 0 || l.Threshold <= 0 {
		return false
	}
	return mbps > float64(l.Mbps)*(1+l.Threshold/100)
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
