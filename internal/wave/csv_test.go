package wave

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/smsflow/smsflow/internal/sms/smserr"
)

func TestParseMembers(t *testing.T) {
	rows, errs := ParseMembers(strings.NewReader(
		"\ufeffName, IP ,target_name,template,priority,disk_sizes\r\n"+
			"web-01,,web-01-new,tpl-1,2,40GiB;100\r\n"+
			"\r\n"+
			",10.0.0.7,,,,\r\n"+
			"\"db,01\",::ffff:10.0.0.8,,,0, 200 \r\n"), 0)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []Row{
		{Line: 2, Member: Member{Name: "web-01", TargetName: "web-01-new", TemplateID: "tpl-1", Priority: new(int32(2)), DiskSizesGiB: []int64{40, 100}}},
		{Line: 4, Member: Member{IP: "10.0.0.7"}},
		{Line: 5, Member: Member{Name: "db,01", IP: "10.0.0.8", Priority: new(int32(0)), DiskSizesGiB: []int64{200}}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got %+v\nwant %+v", rows, want)
	}
	// LF without BOM, only an ip column.
	rows, errs = ParseMembers(strings.NewReader("ip,target_name\n10.0.0.1,a\n10.0.0.2,c\n"), 0)
	if len(errs) != 0 || len(rows) != 2 || rows[1].Line != 3 || rows[0].Member.TargetName != "a" {
		t.Errorf("rows %+v errs %v", rows, errs)
	}
}

type lineCode struct {
	Line int
	Col  string
	Code smserr.Code
}

func TestParseMembersErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []lineCode
	}{
		{"empty", "", []lineCode{{0, "", ErrCSVColumn.Code}}},
		{"only a BOM and blanks", "\ufeff\r\n\r\n", []lineCode{{0, "", ErrCSVColumn.Code}}},
		{"header only", "name\n", []lineCode{{1, "", ErrCSVValue.Code}}},
		{"no name or ip column", "target_name,priority\nx,1\n", []lineCode{{1, "", ErrCSVColumn.Code}}},
		{"unknown column", "name,prority\nweb,1\n", []lineCode{{1, "prority", ErrCSVColumn.Code}}},
		{"column twice", "name,Name\nweb,web\n", []lineCode{{1, "name", ErrCSVColumn.Code}}},
		{"empty column name", "name,\nweb,\n", []lineCode{{1, "column 2", ErrCSVColumn.Code}}},
		{"row without name or ip", "name,ip,target_name\n,,x\n", []lineCode{{2, "", ErrCSVValue.Code}}},
		{"field count", "name,ip\nweb-01\nweb-02,10.0.0.1,extra\n", []lineCode{{2, "", ErrCSVValue.Code}, {3, "", ErrCSVValue.Code}}},
		{"bad values", "name,ip,priority,disk_sizes\nweb,10.0.0.300,3,40;x\n",
			[]lineCode{{2, "ip", ErrCSVValue.Code}, {2, "priority", ErrCSVValue.Code}, {2, "disk_sizes", ErrCSVValue.Code}}},
		{"disk too big", "name,disk_sizes\nweb,65537\n", []lineCode{{2, "disk_sizes", ErrCSVValue.Code}}},
		{"duplicate rows", "name,ip\nweb-01,\nWEB-01,\n,10.0.0.1\nother,10.0.0.1\n",
			[]lineCode{{3, "", ErrCSVDuplicate.Code}, {5, "", ErrCSVDuplicate.Code}}},
		{"bare quote", "name\nwe\"b\n", []lineCode{{2, "column 3", ErrCSVFile.Code}}},
		{"NUL byte", "name\nweb\x00\n", []lineCode{{2, "", ErrCSVFile.Code}}},
		{"invalid UTF-8", "name\nok\nweb\xff\n", []lineCode{{3, "", ErrCSVFile.Code}}},
		{"UTF-16", "\xff\xfen\x00a\x00m\x00e\x00", []lineCode{{1, "", ErrCSVFile.Code}}},
		{"control character in a name", "name\nweb\x1b[31m\n", []lineCode{{2, "name", ErrCSVValue.Code}}},
		// A quoted field may span lines: the next row's line is still right.
		{"newline in a quoted name", "name,target_name\nweb,\"a\nb\"\nweb2,\"x\ny\"\n",
			[]lineCode{{2, "target_name", ErrCSVValue.Code}, {4, "target_name", ErrCSVValue.Code}}},
		{"long target name", "name,target_name\nweb," + strings.Repeat("t", MaxNameLen+1) + "\n", []lineCode{{2, "target_name", ErrCSVValue.Code}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, errs := ParseMembers(strings.NewReader(tt.in), 0)
			if rows != nil {
				t.Errorf("rows %+v with errors", rows)
			}
			var got []lineCode
			for _, e := range errs {
				got = append(got, lineCode{e.Line, e.Column, e.Code})
				if e.Msg == "" {
					t.Errorf("%+v: no message", e)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v\n(%v)", got, tt.want, errs)
			}
		})
	}
}

func TestParseMembersLimits(t *testing.T) {
	// 1 MiB + 1 byte: too large, said once, nothing read.
	big := "name\n" + strings.Repeat("x", MaxCSVBytes)
	rows, errs := ParseMembers(strings.NewReader(big), 0)
	if rows != nil || len(errs) != 1 || errs[0].Code != ErrCSVTooLarge.Code {
		t.Fatalf("big file: %v", errs)
	}
	if e := RowErrorsError(errs); e.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("big file answers %d", e.Status)
	}
	// A 10 MB upload is refused the same way without reading all of it.
	r := &countingReader{r: bytes.NewReader(make([]byte, 10<<20))}
	if _, errs := ParseMembers(r, 0); len(errs) != 1 || errs[0].Code != ErrCSVTooLarge.Code {
		t.Errorf("10 MB: %v", errs)
	}
	if r.n > MaxCSVBytes+1<<16 {
		t.Errorf("read %d bytes of a 10 MB upload", r.n)
	}
	// Exactly the row cap is fine, one more is not.
	var b strings.Builder
	b.WriteString("name\n")
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&b, "web-%d\n", i)
	}
	if rows, errs := ParseMembers(strings.NewReader(b.String()), 5); len(errs) != 0 || len(rows) != 5 {
		t.Errorf("5 rows with cap 5: %d rows, %v", len(rows), errs)
	}
	b.WriteString("web-5\n")
	rows, errs = ParseMembers(strings.NewReader(b.String()), 5)
	if rows != nil || len(errs) != 1 || errs[0].Code != ErrCSVTooLarge.Code || errs[0].Line != 7 {
		t.Errorf("6 rows with cap 5: %v", errs)
	}
	// Many bad rows: MaxRowErrors of them and a count of the rest.
	b.Reset()
	b.WriteString("name,priority\n")
	for i := 0; i < MaxRowErrors+25; i++ {
		fmt.Fprintf(&b, "web-%d,9\n", i)
	}
	_, errs = ParseMembers(strings.NewReader(b.String()), 0)
	if len(errs) != MaxRowErrors+1 || !strings.Contains(errs[MaxRowErrors].Msg, "25 more") {
		t.Errorf("%d errors, last %v", len(errs), errs[len(errs)-1])
	}
	// A reader that fails is reported, not panicked on.
	if _, errs := ParseMembers(iotest.ErrReader(errors.New("disk on fire")), 0); len(errs) != 1 || errs[0].Code != ErrCSVFile.Code {
		t.Errorf("failing reader: %v", errs)
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestRowErrorsError(t *testing.T) {
	_, errs := ParseMembers(strings.NewReader("name,priority\nweb,5\nweb,1\n"), 0)
	e := RowErrorsError(errs)
	if e.Code != ErrCSVValue.Code || e.Status != http.StatusBadRequest || len(e.Details) != 2 {
		t.Fatalf("%+v", e)
	}
	if !strings.Contains(e.Details[0].Message, "line 2: priority:") || !strings.Contains(e.Details[1].Message, "line 3") ||
		e.Details[1].Code != string(ErrCSVDuplicate.Code) {
		t.Errorf("details %+v", e.Details)
	}
	if RowErrorsError(nil) != nil {
		t.Error("no errors gave an error")
	}
}

// FuzzParseMembers: whatever the bytes, no panic, and exactly one of rows
// or errors, rows with increasing lines and members Validate accepts.
func FuzzParseMembers(f *testing.F) {
	f.Add([]byte("name,ip,target_name,template,priority,disk_sizes\nweb-01,,x,t,1,40;100\n,10.0.0.2,,,,\n"))
	f.Add([]byte("\ufeffip\r\n10.0.0.1\r\n10.0.0.1\r\n"))
	f.Add([]byte("name\n\"a\"\"b\nweb\xff"))
	f.Add([]byte("\x00\x01\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, errs := ParseMembers(bytes.NewReader(data), 50)
		if (len(rows) == 0) == (len(errs) == 0) {
			t.Fatalf("%d rows and %d errors", len(rows), len(errs))
		}
		if len(errs) > MaxRowErrors+1 {
			t.Fatalf("%d errors", len(errs))
		}
		ms := make([]Member, len(rows))
		for i, r := range rows {
			if i > 0 && r.Line <= rows[i-1].Line {
				t.Fatalf("line %d after %d", r.Line, rows[i-1].Line)
			}
			ms[i] = r.Member
		}
		if ps := validateMembers(ms); len(ps) != 0 {
			t.Fatalf("imported members fail validation: %v", ps)
		}
	})
}
