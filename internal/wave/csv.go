package wave

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

// CSV import limits.
const (
	// MaxCSVBytes caps an uploaded member file: 10,000 rows of names,
	// addresses and overrides fit in well under 1 MiB.
	MaxCSVBytes = 1 << 20
	// MaxCSVRows caps its rows (the header not counted): MaxMembers.
	MaxCSVRows = MaxMembers
	// MaxRowErrors caps the errors reported for one file; a last entry
	// says how many more there were.
	MaxRowErrors = 100
)

// The CSV columns. Header names are matched without case or surrounding
// spaces, in any order.
const (
	ColName       = "name"        // source server name
	ColIP         = "ip"          // source server IP (one of name, ip per row)
	ColTargetName = "target_name" // target server name
	ColTemplate   = "template"    // template id
	ColPriority   = "priority"    // 0 low, 1 normal (default), 2 high
	// ColDiskSizes lists target disk sizes in whole GiB in the source's
	// disk order, separated by ";" (a "," would need quoting): "40;100"
	// (a "GiB" suffix is tolerated: "40GiB;100GiB").
	ColDiskSizes = "disk_sizes"
)

var columns = []string{ColName, ColIP, ColTargetName, ColTemplate, ColPriority, ColDiskSizes}

// Row is one member read from a CSV file with the line it starts on, so
// the API can name the line of a server it does not know.
type Row struct {
	Line   int    `json:"line"`
	Member Member `json:"member"`
}

// RowError is one problem in a CSV file: its line (1 is the header; 0 when
// it is about the whole file), the column (empty when none), a wave code
// and a message.
type RowError struct {
	Line   int         `json:"line"`
	Column string      `json:"column,omitempty"`
	Code   smserr.Code `json:"error_code"`
	Msg    string      `json:"error_msg"`
}

func (e RowError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, "%s: ", e.Column)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// RowErrorsError turns row errors into one API error: the first one's code
// (a 413 when the file is too large, else a 400) and every error as a
// details entry naming its line.
func RowErrorsError(es []RowError) *smserr.Error {
	if len(es) == 0 {
		return nil
	}
	def := ErrCSVValue
	for _, d := range Errors() {
		if d.Code == es[0].Code {
			def = d
		}
	}
	e := def.New(es[0].Error())
	for _, r := range es {
		e.Details = append(e.Details, smserr.Detail{Code: string(r.Code), Message: r.Error()})
	}
	return e
}

// ParseMembers reads a member CSV file: all rows or none. It returns the
// members with their line numbers, or, when anything is wrong, no members
// and every problem found (at most MaxRowErrors, then a count): a file
// over MaxCSVBytes or with more than maxRows rows (maxRows <= 0 or above
// MaxCSVRows means MaxCSVRows), bytes that are not UTF-8 or a NUL (binary
// junk), a header without name or ip, unknown or repeated columns, a row
// with the wrong number of fields, a bad value, a row naming the same
// server as an earlier one. UTF-8 with or without a BOM, CRLF or LF line
// ends; blank lines are skipped.
func ParseMembers(r io.Reader, maxRows int) ([]Row, []RowError) {
	if maxRows <= 0 || maxRows > MaxCSVRows {
		maxRows = MaxCSVRows
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxCSVBytes+1))
	if err != nil {
		return nil, []RowError{{Code: ErrCSVFile.Code, Msg: "reading the file: " + err.Error()}}
	}
	if len(data) > MaxCSVBytes {
		return nil, []RowError{{Code: ErrCSVTooLarge.Code, Msg: fmt.Sprintf("larger than %d bytes (1 MiB)", MaxCSVBytes)}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if e := checkText8(data); e != nil {
		return nil, []RowError{*e}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, []RowError{{Code: ErrCSVColumn.Code, Msg: "the file is empty: a header with name or ip is required"}}
	}

	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // counted here, so the error names the line
	cr.TrimLeadingSpace = true
	var errs []RowError
	more := 0
	report := func(e RowError) {
		if len(errs) < MaxRowErrors {
			errs = append(errs, e)
		} else {
			more++
		}
	}

	header, err := cr.Read()
	if err != nil {
		return nil, []RowError{csvSyntax(err)}
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "":
			report(RowError{Line: 1, Column: fmt.Sprintf("column %d", i+1), Code: ErrCSVColumn.Code, Msg: "empty column name"})
		case !known(h):
			report(RowError{Line: 1, Column: h, Code: ErrCSVColumn.Code,
				Msg: "unknown column (known: " + strings.Join(columns, ", ") + ")"})
		case col[h] != 0:
			report(RowError{Line: 1, Column: h, Code: ErrCSVColumn.Code, Msg: "column appears twice"})
		default:
			col[h] = i + 1 // 0 is "absent"
		}
	}
	if col[ColName] == 0 && col[ColIP] == 0 {
		report(RowError{Line: 1, Code: ErrCSVColumn.Code, Msg: "missing required column: name or ip"})
	}
	if len(errs) > 0 {
		return nil, finish(errs, more)
	}

	var rows []Row
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			report(csvSyntax(err))
			break // the reader's position after a quoting error is not worth trusting
		}
		line, _ := cr.FieldPos(0)
		if len(rows) >= maxRows {
			return nil, []RowError{{Line: line, Code: ErrCSVTooLarge.Code, Msg: fmt.Sprintf("more than %d rows", maxRows)}}
		}
		if len(rec) != len(header) {
			report(RowError{Line: line, Code: ErrCSVValue.Code,
				Msg: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))})
			rows = append(rows, Row{Line: line})
			continue
		}
		get := func(c string) string {
			if i := col[c]; i > 0 {
				return strings.TrimSpace(rec[i-1])
			}
			return ""
		}
		m, rerrs := rowMember(get, line)
		for _, e := range rerrs {
			report(e)
		}
		// Duplicates are looked for in rows with other problems too, so
		// one pass over the file names them all.
		for _, k := range memberKeys(m) {
			if first, dup := seen[k]; dup {
				report(RowError{Line: line, Code: ErrCSVDuplicate.Code, Msg: fmt.Sprintf("%s repeats line %d", k, first)})
				break
			}
		}
		for _, k := range memberKeys(m) {
			if _, dup := seen[k]; !dup {
				seen[k] = line
			}
		}
		rows = append(rows, Row{Line: line, Member: m})
	}
	if len(errs) > 0 {
		return nil, finish(errs, more)
	}
	if len(rows) == 0 {
		return nil, []RowError{{Line: 1, Code: ErrCSVValue.Code, Msg: "no rows after the header"}}
	}
	return rows, nil
}

func known(h string) bool {
	for _, c := range columns {
		if c == h {
			return true
		}
	}
	return false
}

func finish(errs []RowError, more int) []RowError {
	if more > 0 {
		errs = append(errs, RowError{Code: errs[0].Code, Msg: fmt.Sprintf("and %d more errors", more)})
	}
	return errs
}

// checkText8 refuses what is not text: invalid UTF-8 or a NUL, naming the
// line of the first bad byte.
func checkText8(data []byte) *RowError {
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		if c == 0 {
			return &RowError{Line: line, Code: ErrCSVFile.Code, Msg: "contains a NUL byte: this is not a CSV text file"}
		}
		if c == '\n' {
			line++
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return &RowError{Line: line, Code: ErrCSVFile.Code, Msg: "is not UTF-8 text (save the file as UTF-8)"}
		}
		i += n
	}
	return nil
}

func csvSyntax(err error) RowError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return RowError{Line: pe.Line, Column: fmt.Sprintf("column %d", pe.Column), Code: ErrCSVFile.Code, Msg: pe.Err.Error()}
	}
	return RowError{Code: ErrCSVFile.Code, Msg: err.Error()}
}

// rowMember reads one row's fields into a Member.
func rowMember(get func(string) string, line int) (Member, []RowError) {
	var errs []RowError
	bad := func(c, format string, a ...any) {
		errs = append(errs, RowError{Line: line, Column: c, Code: ErrCSVValue.Code, Msg: fmt.Sprintf(format, a...)})
	}
	m := Member{Name: get(ColName), IP: get(ColIP), TargetName: get(ColTargetName), TemplateID: get(ColTemplate)}
	if m.Name == "" && m.IP == "" {
		bad("", "name or ip is required")
	}
	if m.IP != "" {
		if a, err := netip.ParseAddr(m.IP); err != nil {
			bad(ColIP, "%q is not an IP address", m.IP)
		} else {
			m.IP = a.Unmap().String()
		}
	}
	if p := get(ColPriority); p != "" {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 2 {
			bad(ColPriority, "%q: must be 0 (low), 1 (normal) or 2 (high)", p)
		} else {
			pv := int32(v)
			m.Priority = &pv
		}
	}
	if d := get(ColDiskSizes); d != "" {
		parts := strings.Split(d, ";")
		if len(parts) > MaxDisks {
			bad(ColDiskSizes, "at most %d disks", MaxDisks)
		} else {
			for _, p := range parts {
				g, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "GiB")), 10, 64)
				if err != nil || g < 1 || g > MaxDiskGiB {
					bad(ColDiskSizes, "%q: sizes are whole GiB from 1 to %d separated by ';', such as 40;100", d, MaxDiskGiB)
					m.DiskSizesGiB = nil
					break
				}
				m.DiskSizesGiB = append(m.DiskSizesGiB, g)
			}
		}
	}
	// The shared member checks (lengths, control characters) with CSV
	// column names.
	for _, p := range checkMember(m, "") {
		c := strings.TrimPrefix(p.Field, ".")
		switch {
		case c == "" || c == "ip" || c == "priority" || strings.HasPrefix(c, "disk_sizes_gib"):
			continue // reported above in CSV terms
		case c == "template_id":
			c = ColTemplate
		}
		errs = append(errs, RowError{Line: line, Column: c, Code: ErrCSVValue.Code, Msg: p.Msg})
	}
	return m, errs
}
