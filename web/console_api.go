package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/smsflow/smsflow/internal/sms/smserr"
	"github.com/smsflow/smsflow/web/console"
)

// consoleAPI lets the console's forms call the API itself, in process,
// with the session's IAM token: a form and an SDK call then run the same
// handler (its validation, tenancy, engine calls and SMS codes) and
// cannot drift apart. No socket is involved: the request goes straight to
// the Gin engine.
type consoleAPI struct{ h http.Handler }

var _ console.API = consoleAPI{}

// Call sends in (JSON, nil for none) to method path and decodes the answer
// into out (nil: ignored). A 4xx/5xx answer comes back as *smserr.Error
// with the API's code, status, params and details.
func (a consoleAPI) Call(ctx context.Context, token, method, path string, in, out any) error {
	body := io.Reader(http.NoBody)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("console api %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return fmt.Errorf("console api %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Auth-Token", token)
	req.RemoteAddr = "127.0.0.1:0"
	w := &bufferWriter{header: http.Header{}}
	a.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 {
		// The cause is logged under the inner request's id: name it, so
		// the console's error line (whose id the page shows) leads there.
		inner := fmt.Errorf("console api %s %s: status %d (request %s)", method, path, w.status, w.header.Get(headerReqID))
		var b smserr.Body
		if err := json.Unmarshal(w.buf.Bytes(), &b); err != nil || b.Code == "" {
			return fmt.Errorf("%w: %s", inner, w.buf.String())
		}
		return &smserr.Error{Code: smserr.Code(b.Code), Status: w.status, Message: b.Message, Params: b.Params, Details: b.Details,
			Err: inner}
	}
	if out != nil {
		if err := json.Unmarshal(w.buf.Bytes(), out); err != nil {
			return fmt.Errorf("console api %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// bufferWriter is the in-process call's http.ResponseWriter.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }

func (w *bufferWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.buf.Write(p)
}
