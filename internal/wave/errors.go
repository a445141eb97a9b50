package wave

import (
	"net/http"
	"sort"
	"strings"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// ErrorDef is one of the wave error codes. The spec's §5.1 catalog has no
// waves, and smserr.New only knows that catalog (an unknown code becomes an
// internal error there), so the wave codes live here in SMS.8500-8599, a
// range the catalog does not use (a test keeps it so). The API answers with
// def.New(params...), which builds the same *smserr.Error a catalog code
// gives, so the error body and its mapping are unchanged.
type ErrorDef struct {
	Code    smserr.Code
	Status  int
	Message string // English error_msg; %s placeholders are filled in order
}

// The wave error codes. Messages take their parameters in %s order.
var (
	ErrInvalid         = ErrorDef{"SMS.8500", http.StatusBadRequest, "Invalid wave parameter: %s."}
	ErrNotFound        = ErrorDef{"SMS.8501", http.StatusNotFound, "Wave %s does not exist."}
	ErrNameExists      = ErrorDef{"SMS.8502", http.StatusBadRequest, "A wave named %s already exists in this project."}
	ErrBadTransition   = ErrorDef{"SMS.8503", http.StatusConflict, "Wave in state %s cannot %s."}
	ErrNotEditable     = ErrorDef{"SMS.8504", http.StatusConflict, "Wave in state %s cannot be changed: only DRAFT, SCHEDULED or PAUSED waves can."}
	ErrRunning         = ErrorDef{"SMS.8505", http.StatusConflict, "Wave %s is running: cancel it first."}
	ErrWindowsOverlap  = ErrorDef{"SMS.8506", http.StatusBadRequest, "Bandwidth windows overlap: %s."}
	ErrWindowNoTime    = ErrorDef{"SMS.8507", http.StatusBadRequest, "Window %s has no time range."}
	ErrStartInPast     = ErrorDef{"SMS.8508", http.StatusBadRequest, "start_at %s is in the past."}
	ErrTimeZone        = ErrorDef{"SMS.8509", http.StatusBadRequest, "Unknown time zone %s: use an IANA name such as Europe/Berlin."}
	ErrMaxConcurrent   = ErrorDef{"SMS.8510", http.StatusBadRequest, "max_concurrent must be between 1 and 100."}
	ErrTooManyWindows  = ErrorDef{"SMS.8511", http.StatusBadRequest, "Too many windows in %s."}
	ErrBandwidth       = ErrorDef{"SMS.8512", http.StatusBadRequest, "Bandwidth %s is out of range."}
	ErrDuplicateMember = ErrorDef{"SMS.8513", http.StatusBadRequest, "Duplicate member: %s."}
	ErrMemberInWave    = ErrorDef{"SMS.8514", http.StatusConflict, "Source server %s already belongs to active wave %s."}
	ErrDependencyCycle = ErrorDef{"SMS.8515", http.StatusBadRequest, "Wave dependencies form a cycle: %s."}
	ErrDependency      = ErrorDef{"SMS.8516", http.StatusBadRequest, "Wave %s named in depends_on does not exist."}
	ErrCSVFile         = ErrorDef{"SMS.8517", http.StatusBadRequest, "The CSV file cannot be read: %s."}
	ErrCSVTooLarge     = ErrorDef{"SMS.8518", http.StatusRequestEntityTooLarge, "The CSV file is too large: %s."}
	ErrCSVColumn       = ErrorDef{"SMS.8519", http.StatusBadRequest, "CSV header problem: %s."}
	ErrCSVValue        = ErrorDef{"SMS.8520", http.StatusBadRequest, "Invalid CSV value: %s."}
	ErrCSVDuplicate    = ErrorDef{"SMS.8521", http.StatusBadRequest, "Duplicate CSV row: %s."}
	ErrUnknownSource   = ErrorDef{"SMS.8522", http.StatusBadRequest, "Source server %s does not exist."}
	ErrSourceInWave    = ErrorDef{"SMS.8523", http.StatusConflict, "Source server %s belongs to running wave %s."}
	ErrPreflight       = ErrorDef{"SMS.8524", http.StatusConflict, "Preflight found blocking problems: %s."}
	ErrNotAwaiting     = ErrorDef{"SMS.8525", http.StatusConflict, "Wave is not waiting for %s."}
	ErrClock           = ErrorDef{"SMS.8526", http.StatusBadRequest, "Invalid time of day %s: use HH:MM from 00:00 to 24:00."}
	ErrTooManyMembers  = ErrorDef{"SMS.8527", http.StatusBadRequest, "A wave has at most %s members."}
	ErrMemberBusy      = ErrorDef{"SMS.8528", http.StatusConflict, "Member %s cannot be removed in state %s."}
)

// Errors lists every wave code, sorted, for the README and the tests.
func Errors() []ErrorDef {
	out := []ErrorDef{
		ErrInvalid, ErrNotFound, ErrNameExists, ErrBadTransition, ErrNotEditable, ErrRunning,
		ErrWindowsOverlap, ErrWindowNoTime, ErrStartInPast, ErrTimeZone, ErrMaxConcurrent,
		ErrTooManyWindows, ErrBandwidth, ErrDuplicateMember, ErrMemberInWave, ErrDependencyCycle,
		ErrDependency, ErrCSVFile, ErrCSVTooLarge, ErrCSVColumn, ErrCSVValue, ErrCSVDuplicate,
		ErrUnknownSource, ErrSourceInWave, ErrPreflight, ErrNotAwaiting, ErrClock,
		ErrTooManyMembers, ErrMemberBusy,
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// New builds the API error of this code: %s placeholders are filled with
// params in order (a missing one becomes empty), and the params travel as
// error_param like a catalog code's.
func (d ErrorDef) New(params ...string) *smserr.Error {
	msg := d.Message
	i := 0
	var b strings.Builder
	for {
		k := strings.Index(msg, "%s")
		if k < 0 {
			b.WriteString(msg)
			break
		}
		b.WriteString(msg[:k])
		if i < len(params) {
			b.WriteString(params[i])
			i++
		}
		msg = msg[k+2:]
	}
	var ps []string
	if len(params) > 0 {
		ps = append([]string(nil), params...)
	}
	return &smserr.Error{Code: d.Code, Status: d.Status, Message: strings.TrimSpace(b.String()), Params: ps}
}

// Problem is one thing wrong with a wave spec or a CSV file: the field it
// is in (a JSON path such as "bandwidth_budget.windows[1].end"), the wave
// code that names the kind of problem, and a sentence for people.
type Problem struct {
	Field string      `json:"field"`
	Code  smserr.Code `json:"error_code"`
	Msg   string      `json:"error_msg"`
}

func (p Problem) Error() string { return p.Field + ": " + p.Msg }

// ProblemsError turns a list of problems into one API error: the first
// problem's code and message, and every problem as a details entry
// ("field: message" under its own code), the shape of the spec's body.
func ProblemsError(ps []Problem) *smserr.Error {
	if len(ps) == 0 {
		return nil
	}
	first := ErrInvalid
	for _, d := range Errors() {
		if d.Code == ps[0].Code {
			first = d
		}
	}
	e := first.New(ps[0].Field)
	e.Message = ps[0].Error()
	for _, p := range ps {
		e.Details = append(e.Details, smserr.Detail{Code: string(p.Code), Message: p.Error()})
	}
	return e
}
