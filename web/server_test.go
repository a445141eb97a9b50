package web_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/smsflow/smsflow/web"
)

// TestServeWriteTimeout (issue 8, finding 5): web.Serve's write deadline
// drops a client that stops reading, yet stays above the command long poll
// (and the body read of an agent log upload, which it also covers).
func TestServeWriteTimeout(t *testing.T) {
	assert.Greater(t, web.WriteTimeout, 2*web.MaxCommandWait, "a long poll must finish well inside the write deadline")
	assert.GreaterOrEqual(t, web.WriteTimeout, 5*time.Minute, "an upload's body is read inside the write deadline")
	assert.LessOrEqual(t, web.WriteTimeout, 15*time.Minute, "a client that stops reading is dropped")
}
