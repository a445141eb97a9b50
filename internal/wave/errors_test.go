package wave

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// TestErrorCodes keeps the wave codes in their range, unique, out of the
// spec's catalog, with a 4xx status and a message.
func TestErrorCodes(t *testing.T) {
	seen := map[smserr.Code]bool{}
	for _, d := range Errors() {
		n, err := strconv.Atoi(strings.TrimPrefix(string(d.Code), "SMS."))
		if err != nil || !strings.HasPrefix(string(d.Code), "SMS.") || n < 8500 || n > 8599 {
			t.Errorf("%s is outside SMS.8500-8599", d.Code)
		}
		if seen[d.Code] {
			t.Errorf("%s is used twice", d.Code)
		}
		seen[d.Code] = true
		if _, inCatalog := smserr.Lookup(d.Code); inCatalog {
			t.Errorf("%s is a spec catalog code", d.Code)
		}
		if d.Status < 400 || d.Status > 499 || d.Message == "" {
			t.Errorf("%s: status %d, message %q", d.Code, d.Status, d.Message)
		}
	}
	// Nothing in the catalog lives in the range either (if the spec grows
	// into it, the wave codes must move).
	for _, e := range smserr.All() {
		if strings.HasPrefix(string(e.Code), "SMS.85") {
			t.Errorf("catalog uses %s", e.Code)
		}
	}
}

func TestErrorDefNew(t *testing.T) {
	e := ErrMemberInWave.New("src-1", "wave-9")
	if e.Code != "SMS.8514" || e.Status != http.StatusConflict {
		t.Fatalf("got %s %d", e.Code, e.Status)
	}
	if want := "Source server src-1 already belongs to active wave wave-9."; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	if !reflect.DeepEqual(e.Params, []string{"src-1", "wave-9"}) {
		t.Errorf("params %v", e.Params)
	}
	if b := e.Body(); b.Code != "SMS.8514" || b.Message != e.Message {
		t.Errorf("body %+v", b)
	}
	// Missing params leave the placeholder empty, extra ones are kept as
	// error_param only.
	if m := ErrNotFound.New().Message; m != "Wave  does not exist." {
		t.Errorf("no params: %q", m)
	}
	if got, ok := smserr.As(error(ErrRunning.New("w"))); !ok || got.Code != ErrRunning.Code {
		t.Errorf("smserr.As: %v %v", got, ok)
	}
}

func TestProblemsError(t *testing.T) {
	if ProblemsError(nil) != nil {
		t.Error("no problems gave an error")
	}
	e := ProblemsError([]Problem{
		{"start_at", ErrStartInPast.Code, "2020-01-01T00:00:00Z is in the past"},
		{"max_concurrent", ErrMaxConcurrent.Code, "must be between 1 and 100"},
	})
	if e.Code != ErrStartInPast.Code || e.Status != http.StatusBadRequest {
		t.Errorf("got %s %d", e.Code, e.Status)
	}
	if len(e.Details) != 2 || e.Details[1].Code != string(ErrMaxConcurrent.Code) ||
		e.Details[1].Message != "max_concurrent: must be between 1 and 100" {
		t.Errorf("details %+v", e.Details)
	}
	if !strings.HasPrefix(e.Message, "start_at: ") {
		t.Errorf("message %q", e.Message)
	}
}
