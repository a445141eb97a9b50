package smserr

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smsflow/smsflow/smserr/internal/catalogsrc"
)

// TestCatalogMatchesSpec parses the §5.1 table on its own (not with the
// generator's parser) and checks every code is in the catalog with the
// spec's status, message and description, and nothing else is.
func TestCatalogMatchesSpec(t *testing.T) {
	md, err := os.ReadFile("testdata/spec-5.1.md")
	require.NoError(t, err)
	row := regexp.MustCompile(`^\|\s*(\d{3})\s*\|\s*(SMS\.\d{4})\s*\|([^|]*)\|([^|]*)\|`)
	tags := regexp.MustCompile(`<[^>]*>`)
	want := map[Code][3]string{}
	for _, line := range strings.Split(string(md), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// The later row wins for the one duplicated code (see catalogsrc.Parse).
		// HTML (<br>, <li>) in a cell reads as a space in an error message.
		norm := func(s string) string { return strings.Join(strings.Fields(tags.ReplaceAllString(s, " ")), " ") }
		want[Code(m[2])] = [3]string{m[1], norm(m[3]), norm(m[4])}
	}
	require.Len(t, want, 381, "distinct codes in §5.1")
	assert.Len(t, All(), len(want), "no extra codes")
	for code, w := range want {
		e, ok := Lookup(code)
		if !assert.True(t, ok, "%s missing from the catalog", code) {
			continue
		}
		assert.Equal(t, w[0], strconv.Itoa(e.Status), code)
		assert.Equal(t, w[1], e.Message, code)
		assert.Equal(t, w[2], e.Description, code)
	}
	e, _ := Lookup(SMS7728)
	assert.Contains(t, e.Action, "cutovered", "continuation rows are joined to their row")
}

// TestSpecExtractIsCurrent: when the shared spec is present, the committed
// extract must equal its §5.1 section, so a spec change forces regenerating.
func TestSpecExtractIsCurrent(t *testing.T) {
	spec, err := os.ReadFile("../../shared/spec/sms-api-v3.zh.md")
	if err != nil {
		t.Skip("shared spec not present:", err)
	}
	start := bytes.Index(spec, []byte("## 5.1 错误码"))
	end := bytes.Index(spec, []byte("## 5.2 状态码"))
	require.True(t, start >= 0 && end > start)
	extract, err := os.ReadFile("testdata/spec-5.1.md")
	require.NoError(t, err)
	assert.Equal(t, string(spec[start:end]), string(extract))
}

// TestGeneratedIsCurrent: regenerating reproduces catalog_gen.go exactly.
func TestGeneratedIsCurrent(t *testing.T) {
	md, err := os.ReadFile("testdata/spec-5.1.md")
	require.NoError(t, err)
	rows, err := catalogsrc.Parse(md)
	require.NoError(t, err)
	src, err := catalogsrc.Render(rows)
	require.NoError(t, err)
	have, err := os.ReadFile("catalog_gen.go")
	require.NoError(t, err)
	assert.Equal(t, string(src), string(have), "run go generate ./smserr")
}

func TestEveryCodeMakesAnError(t *testing.T) {
	for _, e := range All() {
		err := New(e.Code, "a", "b", "c")
		assert.Equal(t, e.Code, err.Code)
		assert.Equal(t, e.Status, err.Status)
		assert.NotContains(t, err.Message, "%s", e.Code)
		assert.NotContains(t, err.Message, "{0", e.Code)
		assert.NotContains(t, err.Message, "MISSING", e.Code)
	}
}
