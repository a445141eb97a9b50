package wave

import (
	"math/rand"
	"reflect"
	"sort"
	"testing"
	"testing/quick"
)

func TestSplit(t *testing.T) {
	busy := func(id string) Demand { return Demand{ID: id, MeasuredMbps: 100} }
	tests := []struct {
		name    string
		budget  int32
		members []Demand
		want    []int32
	}{
		{"even", 500, []Demand{busy("a"), busy("b"), busy("c"), busy("d"), busy("e")}, []int32{100, 100, 100, 100, 100}},
		// 100 / 3: the remainder goes to the first IDs.
		{"remainder by id", 100, []Demand{busy("c"), busy("a"), busy("b")}, []int32{33, 34, 33}},
		{"unlimited", 0, []Demand{busy("a"), busy("b")}, []int32{0, 0}},
		{"none", 100, nil, []int32{}},
		{"one takes all", 750, []Demand{busy("a")}, []int32{750}},
		// An idle member keeps the floor; the others share the rest.
		{"idle gives to the others", 500, []Demand{busy("a"), {ID: "b", Idle: true}, busy("c")}, []int32{250, 1, 249}},
		// A slow member (40 measured) is offered 50 (× 1.25); the rest
		// goes to the busy ones.
		{"slow gives to the others", 300, []Demand{{ID: "a", MeasuredMbps: 40, Slow: true}, busy("b"), busy("c")}, []int32{50, 125, 125}},
		// A "slow" member asking more than the fair level gets the level.
		{"slow above the level", 300, []Demand{{ID: "a", MeasuredMbps: 200, Slow: true}, busy("b"), busy("c")}, []int32{100, 100, 100}},
		// Water filling in rounds: 10 and 60 satisfied, the level rises.
		{"water filling", 400, []Demand{
			{ID: "a", MeasuredMbps: 8, Slow: true},   // wants 10
			{ID: "b", MeasuredMbps: 48, Slow: true},  // wants 60
			{ID: "c", MeasuredMbps: 160, Slow: true}, // wants 200 > level 165
			busy("d"),
		}, []int32{10, 60, 165, 165}},
		// Everyone idle: the budget is still handed out (sum == budget).
		{"all idle", 10, []Demand{{ID: "a", Idle: true}, {ID: "b", Idle: true}, {ID: "c", Idle: true}}, []int32{4, 3, 3}},
		// Slow with a NaN or negative measurement asks for the floor.
		{"garbage measurement", 10, []Demand{{ID: "a", MeasuredMbps: -5, Slow: true}, busy("b")}, []int32{1, 9}},
		{"budget equals the floor total", 3, []Demand{busy("a"), busy("b"), busy("c")}, []int32{1, 1, 1}},
		// Below the floor total no share is 0 (that would lift the limit).
		{"budget below the count", 2, []Demand{busy("a"), busy("b"), busy("c")}, []int32{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.budget, tt.members)
			mbps := make([]int32, len(got))
			for i, s := range got {
				mbps[i] = s.Mbps
				if s.ID != tt.members[i].ID {
					t.Errorf("share %d is for %s, want %s", i, s.ID, tt.members[i].ID)
				}
			}
			if !reflect.DeepEqual(mbps, tt.want) {
				t.Errorf("got %v, want %v", mbps, tt.want)
			}
		})
	}
}

// splitCase is a random Split input for testing/quick.
type splitCase struct {
	Budget  int32
	Members []Demand
	Perm    []int
}

func (splitCase) Generate(r *rand.Rand, size int) reflect.Value {
	n := r.Intn(60) + 1
	c := splitCase{Budget: int32(r.Intn(20000)) + int32(n)} // >= the floor total
	if r.Intn(10) == 0 {
		c.Budget = int32(r.Intn(n) + 1) // sometimes under it
	}
	for i := 0; i < n; i++ {
		d := Demand{ID: string(rune('A'+i%26)) + string(rune('a'+i/26)), MeasuredMbps: r.Float64() * 3000}
		switch r.Intn(4) {
		case 0:
			d.Idle = true
		case 1:
			d.Slow = true
		}
		c.Members = append(c.Members, d)
	}
	c.Perm = r.Perm(n)
	return reflect.ValueOf(c)
}

// TestSplitProperties: over random inputs the shares sum to the budget
// (when it covers the floor), none is below the floor or 0, an idle or
// slow member never gets more than a busy one (but the remainder's 1),
// and the order of the members does not matter.
func TestSplitProperties(t *testing.T) {
	prop := func(c splitCase) bool {
		shares := Split(c.Budget, c.Members)
		var sum int64
		byID := map[string]int32{}
		for _, s := range shares {
			if s.Mbps < MinShareMbps {
				t.Logf("share %d < floor: %+v", s.Mbps, c)
				return false
			}
			sum += int64(s.Mbps)
			byID[s.ID] = s.Mbps
		}
		if int64(c.Budget) >= int64(len(c.Members))*MinShareMbps && sum != int64(c.Budget) {
			t.Logf("sum %d != budget %d", sum, c.Budget)
			return false
		}
		// Busy members share the top level: they differ by at most 1, and
		// no bounded member gets more than that level (plus the remainder's
		// one Mbit/s when it shares the level).
		var busy []int32
		for _, m := range c.Members {
			if !m.Idle && !m.Slow {
				busy = append(busy, byID[m.ID])
			}
		}
		sort.Slice(busy, func(i, j int) bool { return busy[i] < busy[j] })
		if len(busy) > 0 && int64(c.Budget) >= int64(len(c.Members)) {
			if busy[len(busy)-1]-busy[0] > 1 {
				t.Logf("busy shares spread: %v", busy)
				return false
			}
			for _, m := range c.Members {
				if (m.Idle || m.Slow) && byID[m.ID] > busy[len(busy)-1]+1 {
					t.Logf("%s (idle %v slow %v) got %d above busy %d", m.ID, m.Idle, m.Slow, byID[m.ID], busy[len(busy)-1])
					return false
				}
			}
		}
		perm := make([]Demand, len(c.Members))
		for i, j := range c.Perm {
			perm[i] = c.Members[j]
		}
		for _, s := range Split(c.Budget, perm) {
			if byID[s.ID] != s.Mbps {
				t.Logf("order changed %s: %d vs %d", s.ID, byID[s.ID], s.Mbps)
				return false
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 2000, Rand: rand.New(rand.NewSource(11))}); err != nil {
		t.Error(err)
	}
}

// FuzzSplit runs the same promises over fuzzed inputs.
func FuzzSplit(f *testing.F) {
	f.Add(int32(500), []byte{0, 1, 2, 3, 200, 17})
	f.Add(int32(0), []byte{9})
	f.Add(int32(2), []byte{1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, budget int32, raw []byte) {
		if len(raw) > 200 {
			raw = raw[:200]
		}
		var ds []Demand
		for i, b := range raw {
			ds = append(ds, Demand{ID: string(rune(0x4e00 + i)), MeasuredMbps: float64(b) * 7.3, Idle: b%5 == 0, Slow: b%3 == 0})
		}
		shares := Split(budget, ds)
		if len(shares) != len(ds) {
			t.Fatalf("%d shares for %d members", len(shares), len(ds))
		}
		var sum int64
		for _, s := range shares {
			if budget > 0 && s.Mbps < MinShareMbps || budget <= 0 && s.Mbps != 0 {
				t.Fatalf("budget %d: share %d", budget, s.Mbps)
			}
			sum += int64(s.Mbps)
		}
		if len(ds) > 0 && budget > 0 && int64(budget) >= int64(len(ds)) && sum != int64(budget) {
			t.Fatalf("sum %d != budget %d", sum, budget)
		}
	})
}

func TestIsSlow(t *testing.T) {
	for _, tt := range []struct {
		mbps  float64
		share int32
		want  bool
	}{{79, 100, true}, {80, 100, false}, {0, 0, false}, {5, 0, false}} {
		if got := IsSlow(tt.mbps, tt.share); got != tt.want {
			t.Errorf("IsSlow(%v, %d) = %v", tt.mbps, tt.share, got)
		}
	}
}
