package ptr

import "testing"

func TestDeref(t *testing.T) {
	if got := Deref[int64](nil); got != 0 {
		t.Fatalf("Deref(nil) = %d, want 0", got)
	}
	if got := Deref(new("x")); got != "x" {
		t.Fatalf("Deref(new(\"x\")) = %q, want \"x\"", got)
	}
	type facts struct{ Name string }
	if got := Deref[facts](nil); got != (facts{}) {
		t.Fatalf("Deref of a nil struct pointer = %+v, want the zero value", got)
	}
}
