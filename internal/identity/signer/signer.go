// Package signer implements SDK-HMAC-SHA256, the AK/SK request signature of
// the Huawei Cloud SDKs (github.com/huaweicloud/huaweicloud-sdk-go-v3,
// core/auth/signer): Sign for clients (our agent, tests) and Verify for the
// server. It depends on the standard library only, so the agent can import it
// without pulling in the server.
//
// The canonical request is
//
//	METHOD \n URI \n QUERY \n HEADERS \n SIGNED_HEADERS \n PAYLOAD_HASH
//
// where HEADERS is one "name:value\n" line per signed value (so an empty line
// precedes SIGNED_HEADERS), the string to sign is
// "SDK-HMAC-SHA256\n<X-Sdk-Date>\n<hex SHA-256 of the canonical request>" and
// the signature is its hex HMAC-SHA256 keyed with the SK bytes.
//
// How the server side reproduces what the SDK computed on the client:
//
//   - URI. The SDK escapes its own, unescaped path (segment by segment, every
//     byte but A-Z a-z 0-9 _ - ~ . as upper-case %XX, "/" kept) and then sends
//     that path through net/url, which percent-encodes it and never emits an
//     escaped "/". A Go server decodes it back into req.URL.Path, which is
//     therefore exactly the string the SDK escaped: "a b" and "50%" reach us
//     as "a b" and "50%" and canonicalise to "a%20b/" and "50%25/". Verify
//     uses req.URL.Path, never RawPath/EscapedPath (using the escaped form
//     would double-escape "%"). A "/" is appended unless the path ends in one.
//   - QUERY. The SDK signs the unescaped parameter values and sends them with
//     url.Values.Encode (space as %20, empty values as a bare key). Verify
//     decodes RawQuery the way net/url.ParseQuery does, sorts by key then by
//     value and writes E(k)=E(v) joined by "&" (an empty value gives "k=").
//     A query ParseQuery would refuse in part (bad %-escape, ";") or that has
//     more than 10000 parameters is rejected with ErrMalformed: the SDK never
//     sends one and net/url would silently drop the offending pairs.
//   - HEADERS. For each name in SignedHeaders, in the given order, every value
//     of that header on the request is written as "name:TrimSpace(value)",
//     values sorted. Several values arise when the SDK was given header
//     parameters whose names differ only in case ("X-Foo" and "x-foo"): it
//     sends both lines and lists the name twice in SignedHeaders
//     ("x-foo;x-foo"), each occurrence writing every value. Values are never
//     joined with ",". Verify follows the list exactly, duplicates included,
//     so such requests verify; a signed header absent from the request writes
//     no line (as in the SDK). "host" is taken from req.Host.
//   - PAYLOAD_HASH. Hex SHA-256 of the raw body. The SDK instead sends and
//     signs X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD whenever the Content-Type
//     is set and is neither JSON nor BSON: such a body is NOT covered by the
//     signature (callers may refuse it, see Authorization.Signs). Verify
//     honours X-Sdk-Content-Sha256 only when it is itself signed (otherwise
//     anyone could swap a body and add the old body's hash), and a signed
//     value other than UNSIGNED-PAYLOAD must be the hex SHA-256 of the body.
//
// Inherent to the scheme: "/x" and "/x/" have the same canonical URI, the
// AK is not signed (a wrong AK fails only through its different SK), and
// headers outside SignedHeaders (Content-Type, Host unless listed) may be
// changed in transit. The SDK sorts repeated header values before trimming
// them while a server only sees trimmed values, so repeated values with
// leading spaces can fail to verify; the SDK sends repeats only for header
// parameter names differing in case.
package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	// Algorithm names the scheme in the Authorization header.
	Algorithm = "SDK-HMAC-SHA256"
	// HeaderDate carries the signing time, always signed.
	HeaderDate = "X-Sdk-Date"
	// HeaderContentSHA256, when present and signed, replaces the body hash.
	HeaderContentSHA256 = "X-Sdk-Content-Sha256"
	// UnsignedPayload is the X-Sdk-Content-Sha256 value the SDK sends for
	// bodies whose Content-Type is neither JSON nor BSON.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// DateFormat is the layout of X-Sdk-Date (UTC).
	DateFormat = "20060102T150405Z"

	// maxQueryParams is net/url's default limit: ParseQuery returns nothing
	// beyond it, so such a query is refused rather than signed as empty.
	maxQueryParams = 10000
)

var (
	// ErrMalformed: the Authorization header, X-Sdk-Date, the query or
	// another signed part of the request cannot be parsed.
	ErrMalformed = errors.New("signer: malformed signed request")
	// ErrBadSignature: the signature does not match the request.
	ErrBadSignature = errors.New("signer: signature mismatch")
	// ErrClockSkew: X-Sdk-Date is too far from the server clock.
	ErrClockSkew = errors.New("signer: request time outside the allowed skew")
)

// Authorization is a parsed Authorization header.
type Authorization struct {
	AccessKey string
	// SignedHeaders are lower case, in the order of the header (the SDK sorts
	// them; a name may repeat, see the package comment).
	SignedHeaders []string
	// Signature is 64 hex digits.
	Signature string
}

// Signs reports whether the header name (any case) is among the signed
// headers. A server can use it to require that a header it relies on, e.g.
// X-Project-Id, was signed, or to spot UNSIGNED-PAYLOAD requests.
func (a Authorization) Signs(name string) bool {
	for _, h := range a.SignedHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// ParseAuthorization parses
// "SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex". The three
// fields are required, once each, in any order, separated by "," with
// optional spaces; header names must be lower-case HTTP tokens and the
// signature 64 hex digits. Errors wrap ErrMalformed.
func ParseAuthorization(h string) (Authorization, error) {
	rest, ok := strings.CutPrefix(h, Algorithm+" ")
	if !ok {
		return Authorization{}, fmt.Errorf("%w: scheme is not %s", ErrMalformed, Algorithm)
	}
	var a Authorization
	var signed string
	var seen [3]bool
	for {
		part, more, found := strings.Cut(rest, ",")
		k, v, ok := strings.Cut(strings.Trim(part, " \t"), "=")
		if !ok {
			return Authorization{}, fmt.Errorf("%w: field %q is not key=value", ErrMalformed, part)
		}
		var i int
		switch k {
		case "Access":
			i, a.AccessKey = 0, v
		case "SignedHeaders":
			i, signed = 1, v
		case "Signature":
			i, a.Signature = 2, v
		default:
			return Authorization{}, fmt.Errorf("%w: unknown field %q", ErrMalformed, k)
		}
		if seen[i] {
			return Authorization{}, fmt.Errorf("%w: repeated field %q", ErrMalformed, k)
		}
		seen[i] = true
		if !found {
			break
		}
		rest = more
	}
	if a.AccessKey == "" || signed == "" || a.Signature == "" {
		return Authorization{}, fmt.Errorf("%w: Access, SignedHeaders and Signature are required", ErrMalformed)
	}
	if !isHex64(a.Signature) {
		return Authorization{}, fmt.Errorf("%w: signature must be 64 hex digits", ErrMalformed)
	}
	a.SignedHeaders = make([]string, 0, strings.Count(signed, ";")+1)
	for {
		name, more, found := strings.Cut(signed, ";")
		if !isLowerToken(name) {
			return Authorization{}, fmt.Errorf("%w: signed header %q is not a lower-case header name", ErrMalformed, name)
		}
		a.SignedHeaders = append(a.SignedHeaders, name)
		if !found {
			break
		}
		signed = more
	}
	return a, nil
}

// Sign signs req the way the SDK does and sets X-Sdk-Date (from now, when
// missing or unparsable) and Authorization. body must be the exact bytes that
// will be sent. It signs every header set on req except Authorization,
// Content-Type (any name starting with "content-type", as the SDK), names
// containing "_" (as the SDK), and those Go's transport does not send from
// req.Header (Host, Content-Length, Transfer-Encoding, Trailer, an empty
// User-Agent). Header names are canonicalised and values trimmed of spaces
// and tabs in place, which changes nothing on the wire. If the caller set
// X-Sdk-Content-Sha256 it is signed and must be UNSIGNED-PAYLOAD or the
// body's hash. The URL path must be empty or start with "/", and the query
// must decode (see the package comment).
func Sign(req *http.Request, body []byte, ak, sk string, now time.Time) error {
	if req == nil || req.URL == nil {
		return errors.New("signer: request without URL")
	}
	if ak == "" || sk == "" {
		return errors.New("signer: AK and SK are required")
	}
	if strings.ContainsAny(ak, ", \t\r\n") {
		return errors.New("signer: AK must not contain commas or white space")
	}
	if req.URL.Opaque != "" {
		return errors.New("signer: opaque URLs are not supported")
	}
	if p := req.URL.Path; p != "" && p[0] != '/' {
		// Sent as is in the request line, a server would not read it back
		// as this path ("a:b" even parses as a scheme).
		return fmt.Errorf("signer: path %q does not start with /", p)
	}
	var buf [1024]byte
	if _, ok := appendQuery(buf[:0], req.URL.RawQuery); !ok {
		return fmt.Errorf("signer: the query %q does not decode", req.URL.RawQuery)
	}
	var contentHash []string
	for k, vs := range req.Header {
		if !isToken(k) {
			return fmt.Errorf("signer: invalid header name %q", k)
		}
		if strings.EqualFold(k, HeaderContentSHA256) {
			contentHash = append(contentHash, vs...)
		}
	}
	var hashBuf [64]byte
	payload := bodyHash(&hashBuf, body)
	if vs := contentHash; len(vs) > 0 {
		v := strings.Trim(vs[0], " \t")
		if len(vs) != 1 || (v != UnsignedPayload && !strings.EqualFold(v, string(payload))) {
			return errors.New("signer: X-Sdk-Content-Sha256 must be UNSIGNED-PAYLOAD or the SHA-256 of the body")
		}
		payload = append(hashBuf[:0], v...)
	}

	// Valid: from here on req is only completed.
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	for k, vs := range req.Header {
		if ck := http.CanonicalHeaderKey(k); ck != k {
			req.Header[ck] = append(req.Header[ck], vs...)
			delete(req.Header, k)
		}
	}
	req.Header.Del("Authorization")
	date := req.Header[HeaderDate]
	if len(date) != 1 {
		req.Header.Set(HeaderDate, now.UTC().Format(DateFormat))
	} else if _, err := time.Parse(DateFormat, strings.Trim(date[0], " \t")); err != nil {
		req.Header.Set(HeaderDate, now.UTC().Format(DateFormat))
	}

	signed := make([]string, 0, len(req.Header))
	for k, vs := range req.Header {
		lk := strings.ToLower(k)
		switch {
		case len(vs) == 0, strings.Contains(k, "_"), strings.HasPrefix(lk, "content-type"),
			lk == "host", lk == "content-length", lk == "transfer-encoding", lk == "trailer",
			lk == "user-agent" && vs[0] == "":
			continue
		}
		if lk == "user-agent" && len(vs) > 1 {
			vs = vs[:1] // the transport sends only the first User-Agent
			req.Header[k] = vs
		}
		for i, v := range vs {
			vs[i] = strings.Trim(v, " \t")
		}
		signed = append(signed, lk)
	}
	slices.Sort(signed)

	cr, _ := appendCanonical(buf[:0], req, signed, payload)
	mac := signature(cr, req.Header.Get(HeaderDate), sk)
	req.Header.Set("Authorization", Algorithm+" Access="+ak+", SignedHeaders="+strings.Join(signed, ";")+
		", Signature="+hex.EncodeToString(mac[:]))
	return nil
}

// Verify recomputes the signature of a received request with sk, the secret
// of auth.AccessKey, and compares it in constant time. body is the raw body
// the caller read. x-sdk-date must be signed and X-Sdk-Date present once and
// within maxSkew of now (else ErrClockSkew). Unparsable parts give
// ErrMalformed, a mismatch ErrBadSignature. It never panics.
func Verify(req *http.Request, body []byte, auth Authorization, sk string, now time.Time, maxSkew time.Duration) error {
	return VerifySum(req, sha256.Sum256(body), auth, sk, now, maxSkew)
}

// CheckDate makes the checks of Verify that need neither the body nor the
// secret: x-sdk-date is signed, X-Sdk-Date is present once, parses and is
// within maxSkew of now. A server calls it before reading a body, so that a
// stale or malformed request costs it no memory.
func CheckDate(req *http.Request, auth Authorization, now time.Time, maxSkew time.Duration) error {
	_, err := checkDate(req, auth, now, maxSkew)
	return err
}

func checkDate(req *http.Request, auth Authorization, now time.Time, maxSkew time.Duration) (string, error) {
	if req == nil || req.URL == nil {
		return "", fmt.Errorf("%w: request without URL", ErrMalformed)
	}
	if !slices.Contains(auth.SignedHeaders, "x-sdk-date") {
		return "", fmt.Errorf("%w: x-sdk-date is not signed", ErrMalformed)
	}
	dates := req.Header[HeaderDate]
	if len(dates) != 1 {
		return "", fmt.Errorf("%w: want exactly one %s header, got %d", ErrMalformed, HeaderDate, len(dates))
	}
	date := dates[0]
	t, err := time.Parse(DateFormat, date)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q", ErrMalformed, HeaderDate, date)
	}
	maxSkew = max(maxSkew, 0)
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return "", ErrClockSkew
	}
	return date, nil
}

// VerifySum is Verify for a body the caller hashed as it read it (so it
// never has to hold a body it does not need): bodySum is the SHA-256 of the
// raw body.
func VerifySum(req *http.Request, bodySum [sha256.Size]byte, auth Authorization, sk string, now time.Time, maxSkew time.Duration) error {
	date, err := checkDate(req, auth, now, maxSkew)
	if err != nil {
		return err
	}
	want, ok := decodeHex32(auth.Signature)
	if !ok {
		return fmt.Errorf("%w: signature must be 64 hex digits", ErrMalformed)
	}

	var hashBuf [64]byte
	hex.Encode(hashBuf[:], bodySum[:])
	payload := hashBuf[:]
	if slices.Contains(auth.SignedHeaders, "x-sdk-content-sha256") {
		switch vs := req.Header[HeaderContentSHA256]; {
		case len(vs) > 1:
			return fmt.Errorf("%w: repeated %s", ErrMalformed, HeaderContentSHA256)
		case len(vs) == 1 && vs[0] == UnsignedPayload:
			payload = append(hashBuf[:0], UnsignedPayload...)
		case len(vs) == 1:
			if len(vs[0]) != len(payload) || !strings.EqualFold(vs[0], string(payload)) {
				return fmt.Errorf("%w: %s does not match the body", ErrBadSignature, HeaderContentSHA256)
			}
			payload = append(hashBuf[:0], vs[0]...)
		}
	}

	var buf [1024]byte
	cr, ok := appendCanonical(buf[:0], req, auth.SignedHeaders, payload)
	if !ok {
		return fmt.Errorf("%w: query does not decode", ErrMalformed)
	}
	got := signature(cr, date, sk)
	if !hmac.Equal(got[:], want[:]) {
		return ErrBadSignature
	}
	return nil
}

// CanonicalRequest returns the canonical request of req for the given signed
// header names and payload hash, as Sign and Verify hash it. For a query that
// does not decode it keeps the pairs that do (Verify refuses such requests).
func CanonicalRequest(req *http.Request, signedHeaders []string, payloadHash string) string {
	if req == nil {
		req = &http.Request{}
	}
	cr, _ := appendCanonical(nil, req, signedHeaders, []byte(payloadHash))
	return string(cr)
}

func bodyHash(dst *[64]byte, body []byte) []byte {
	sum := sha256.Sum256(body)
	hex.Encode(dst[:], sum[:])
	return dst[:]
}

// signature is HMAC-SHA256(sk, "SDK-HMAC-SHA256\n" + date + "\n" + hex(SHA-256(cr))).
func signature(cr []byte, date, sk string) [sha256.Size]byte {
	crHash := sha256.Sum256(cr)
	var buf [128]byte
	sts := append(buf[:0], Algorithm...)
	sts = append(sts, '\n')
	sts = append(sts, date...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, crHash[:])
	m := hmac.New(sha256.New, []byte(sk))
	m.Write(sts)
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// appendCanonical appends the canonical request to b. ok is false when the
// query does not decode (the pairs that do are still written).
func appendCanonical(b []byte, req *http.Request, signed []string, payload []byte) (_ []byte, ok bool) {
	method := req.Method
	if method == "" {
		method = http.MethodGet // what Go's client sends
	}
	var path, rawQuery string
	if req.URL != nil {
		path, rawQuery = req.URL.Path, req.URL.RawQuery
	}
	b = append(b, method...)
	b = append(b, '\n')
	b = appendURI(b, path)
	b = append(b, '\n')
	b, ok = appendQuery(b, rawQuery)
	b = append(b, '\n')
	b = appendHeaders(b, req, signed)
	b = append(b, '\n')
	for i, name := range signed {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, name...)
	}
	b = append(b, '\n')
	b = append(b, payload...)
	return b, ok
}

// appendURI escapes every byte of the decoded path but "/", which is the same
// as escaping each "/"-separated segment, and ends the result with "/".
func appendURI(b []byte, path string) []byte {
	for i := 0; i < len(path); i++ {
		if c := path[i]; c == '/' {
			b = append(b, '/')
		} else {
			b = appendEscapedByte(b, c)
		}
	}
	if path == "" || path[len(path)-1] != '/' {
		b = append(b, '/')
	}
	return b
}

type queryPair struct{ k, v string }

// appendQuery decodes raw as url.ParseQuery does and appends the pairs sorted
// by key, then value, as E(k)=E(v) joined by "&". ok is false if a pair does
// not decode (it is skipped, as ParseQuery does) or there are too many.
func appendQuery(b []byte, raw string) (_ []byte, ok bool) {
	if raw == "" {
		return b, true
	}
	if strings.Count(raw, "&") >= maxQueryParams {
		return b, false
	}
	ok = true
	var arr [16]queryPair
	pairs := arr[:0]
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(kv, ";") {
			ok = false
			continue
		}
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			ok = false
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			ok = false
			continue
		}
		pairs = append(pairs, queryPair{k, v})
	}
	slices.SortFunc(pairs, func(x, y queryPair) int {
		if c := strings.Compare(x.k, y.k); c != 0 {
			return c
		}
		return strings.Compare(x.v, y.v)
	})
	for i, p := range pairs {
		if i > 0 {
			b = append(b, '&')
		}
		b = appendEscaped(b, p.k)
		b = append(b, '=')
		b = appendEscaped(b, p.v)
	}
	return b, ok
}

// appendHeaders writes "name:value\n" for every value of every signed header,
// values sorted then trimmed, names in the order given.
func appendHeaders(b []byte, req *http.Request, signed []string) []byte {
	var one [1]string
	var tmp [4]string
	for _, name := range signed {
		var vals []string
		if name == "host" {
			one[0] = req.Host
			vals = one[:]
		} else {
			vals = headerValues(req.Header, name)
		}
		if len(vals) > 1 {
			vals = append(tmp[:0], vals...)
			slices.Sort(vals)
		}
		for _, v := range vals {
			b = append(b, name...)
			b = append(b, ':')
			b = append(b, strings.TrimSpace(v)...)
			b = append(b, '\n')
		}
	}
	return b
}

// headerValues is h.Values(name) without allocating the canonical key for
// the usual names made of lower-case letters, digits and "-".
func headerValues(h http.Header, name string) []string {
	var buf [64]byte
	if len(name) == 0 || len(name) > len(buf) {
		return h.Values(name)
	}
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z':
			if upper {
				c -= 'a' - 'A'
			}
		case '0' <= c && c <= '9', c == '-':
		default:
			return h.Values(name)
		}
		buf[i] = c
		upper = c == '-'
	}
	return h[string(buf[:len(name)])]
}

const upperHex = "0123456789ABCDEF"

// unreserved marks the bytes the SDK leaves unescaped: A-Z a-z 0-9 _ - ~ .
var unreserved = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '_' || c == '-' || c == '~' || c == '.'
	}
	return t
}()

func appendEscapedByte(b []byte, c byte) []byte {
	if unreserved[c] {
		return append(b, c)
	}
	return append(b, '%', upperHex[c>>4], upperHex[c&15])
}

// appendEscaped is the SDK's escape: every byte but A-Z a-z 0-9 _ - ~ . as
// %XX with upper-case hex (so a space is %20, never "+").
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b = appendEscapedByte(b, s[i])
	}
	return b
}

func isHex64(s string) bool {
	_, ok := decodeHex32(s)
	return ok
}

// decodeHex32 decodes 64 hex digits of either case.
func decodeHex32(s string) (out [32]byte, ok bool) {
	if len(s) != 2*len(out) {
		return out, false
	}
	for i := range out {
		hi, ok1 := hexVal(s[2*i])
		lo, ok2 := hexVal(s[2*i+1])
		if !ok1 || !ok2 {
			return out, false
		}
		out[i] = hi<<4 | lo
	}
	return out, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isToken reports whether s is an HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func isLowerToken(s string) bool {
	return isToken(s) && strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) < 0
}
