// Package signer implements SDK-HMAC-SHA256, the AK/SK request signature of
// Huawei Cloud's SDKs: Sign for clients (our agent, tests) and Verify for the
// server. It depends on the standard library only, so the agent can import it
// without pulling in the server.
package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

const (
	// Algorithm names the scheme in the Authorization header.
	Algorithm = "SDK-HMAC-SHA256"
	// HeaderDate carries the signing time.
	HeaderDate = "X-Sdk-Date"
	// HeaderContentSHA256, when present, replaces the body hash (the SDK sets
	// it to UNSIGNED-PAYLOAD for non-JSON bodies).
	HeaderContentSHA256 = "X-Sdk-Content-Sha256"
	// DateFormat is the layout of X-Sdk-Date.
	DateFormat = "20060102T150405Z"
)

var (
	// ErrMalformed: the Authorization or X-Sdk-Date header cannot be parsed.
	ErrMalformed = errors.New("signer: malformed authorization")
	// ErrBadSignature: the signature does not match the request.
	ErrBadSignature = errors.New("signer: signature mismatch")
	// ErrClockSkew: X-Sdk-Date is too far from the server clock.
	ErrClockSkew = errors.New("signer: request time outside the allowed skew")
)

// Authorization is a parsed Authorization header.
type Authorization struct {
	AccessKey     string
	SignedHeaders []string
	Signature     string
}

// ParseAuthorization parses
// "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex".
func ParseAuthorization(h string) (Authorization, error) {
	rest, ok := strings.CutPrefix(h, Algorithm+" ")
	if !ok {
		return Authorization{}, fmt.Errorf("%w: not %s", ErrMalformed, Algorithm)
	}
	var a Authorization
	var signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Authorization{}, fmt.Errorf("%w: %q", ErrMalformed, part)
		}
		switch k {
		case "Access":
			a.AccessKey = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			a.Signature = v
		default:
			return Authorization{}, fmt.Errorf("%w: unknown field %q", ErrMalformed, k)
		}
	}
	if a.AccessKey == "" || signed == "" || a.Signature == "" {
		return Authorization{}, fmt.Errorf("%w: Access, SignedHeaders and Signature are required", ErrMalformed)
	}
	if len(a.Signature) != 64 {
		return Authorization{}, fmt.Errorf("%w: signature must be 64 hex characters", ErrMalformed)
	}
	if _, err := hex.DecodeString(a.Signature); err != nil {
		return Authorization{}, fmt.Errorf("%w: signature is not hex", ErrMalformed)
	}
	a.SignedHeaders = strings.Split(signed, ";")
	for _, sh := range a.SignedHeaders {
		if sh == "" || sh != strings.ToLower(sh) {
			return Authorization{}, fmt.Errorf("%w: signed header names must be lower case", ErrMalformed)
		}
	}
	return a, nil
}

// Sign signs req as the Huawei Cloud SDK does: every header already set on
// req is signed except Content-Type and names containing "_", plus
// X-Sdk-Date (added from now when absent). body is the exact body sent.
func Sign(req *http.Request, body []byte, ak, sk string, now time.Time) error {
	if ak == "" || sk == "" {
		return errors.New("signer: AK and SK are required")
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get(HeaderDate) == "" {
		req.Header.Set(HeaderDate, now.UTC().Format(DateFormat))
	}
	var signed []string
	for k := range req.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "content-type") || strings.Contains(k, "_") || lk == "authorization" {
			continue
		}
		signed = append(signed, lk)
	}
	sort.Strings(signed)
	sig := signature(req, signed, payloadHash(req, body), req.Header.Get(HeaderDate), sk)
	req.Header.Set("Authorization", fmt.Sprintf("%s Access=%s, SignedHeaders=%s, Signature=%s",
		Algorithm, ak, strings.Join(signed, ";"), sig))
	return nil
}

// Verify recomputes the signature of a received request with the SK of
// auth.AccessKey and compares it in constant time. X-Sdk-Date must be signed
// and within maxSkew of now.
func Verify(req *http.Request, body []byte, auth Authorization, sk string, now time.Time, maxSkew time.Duration) error {
	dateSigned := false
	for _, h := range auth.SignedHeaders {
		if h == "x-sdk-date" {
			dateSigned = true
			break
		}
	}
	if !dateSigned {
		return fmt.Errorf("%w: x-sdk-date is not signed", ErrMalformed)
	}
	date := req.Header.Get(HeaderDate)
	t, err := time.Parse(DateFormat, date)
	if err != nil {
		return fmt.Errorf("%w: X-Sdk-Date %q", ErrMalformed, date)
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return ErrClockSkew
	}
	want := signature(req, auth.SignedHeaders, payloadHash(req, body), date, sk)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(auth.Signature))) {
		return ErrBadSignature
	}
	return nil
}

func payloadHash(req *http.Request, body []byte) string {
	if v := req.Header.Get(HeaderContentSHA256); v != "" {
		return v
	}
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

func signature(req *http.Request, signed []string, payload, date, sk string) string {
	cr := CanonicalRequest(req, signed, payload)
	crHash := sha256.Sum256([]byte(cr))
	var sts strings.Builder
	sts.Grow(len(Algorithm) + len(date) + 66)
	sts.WriteString(Algorithm)
	sts.WriteByte('\n')
	sts.WriteString(date)
	sts.WriteByte('\n')
	sts.WriteString(hex.EncodeToString(crHash[:]))
	m := hmac.New(sha256.New, []byte(sk))
	m.Write([]byte(sts.String()))
	return hex.EncodeToString(m.Sum(nil))
}

// CanonicalRequest builds
// METHOD\nURI\nQUERY\nCANONICAL_HEADERS\nSIGNED_HEADERS\nPAYLOAD_HASH.
func CanonicalRequest(req *http.Request, signed []string, payload string) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString(req.Method)
	b.WriteByte('\n')
	writeURI(&b, req.URL.Path)
	b.WriteByte('\n')
	writeQuery(&b, req.URL.RawQuery)
	b.WriteByte('\n')
	for _, name := range signed {
		var vals []string
		if name == "host" {
			vals = []string{req.Host}
		} else {
			vals = req.Header.Values(name)
		}
		if len(vals) > 1 {
			vals = append([]string(nil), vals...)
			sort.Strings(vals)
		}
		for _, v := range vals {
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(strings.TrimSpace(v))
			b.WriteByte('\n')
		}
	}
	b.WriteByte('\n')
	for i, name := range signed {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
	}
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

// writeURI escapes each segment of the decoded path and ends with "/".
func writeURI(b *strings.Builder, path string) {
	for i, seg := range strings.Split(path, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		escape(b, seg)
	}
	if path == "" || path[len(path)-1] != '/' {
		b.WriteByte('/')
	}
}

// writeQuery sorts keys, then values within a key, as k=v joined by "&".
func writeQuery(b *strings.Builder, raw string) {
	if raw == "" {
		return
	}
	// A query that does not decode cannot have come from the SDK; it still
	// must not panic: ParseQuery keeps what it can and the signature fails.
	q, _ := url.ParseQuery(raw)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	first := true
	for _, k := range keys {
		vals := q[k]
		sort.Strings(vals)
		for _, v := range vals {
			if !first {
				b.WriteByte('&')
			}
			first = false
			escape(b, k)
			b.WriteByte('=')
			escape(b, v)
		}
	}
}

const upperHex = "0123456789ABCDEF"

// escape percent-encodes every byte except A-Z a-z 0-9 _ - ~ .
func escape(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
}
