package console

import "testing"

func TestFmtDur(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		in   *float64
		want string
	}{
		{nil, "—"},
		{f(0.4), "400ms"}, // a quick cutover's downtime is not "0s"
		{f(1.25), "1.3s"},
		{f(9.94), "9.9s"},
		{f(42.375), "42s"},
		{f(3725), "1h2m5s"},
	} {
		if got := fmtDur(tc.in); got != tc.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
