// Package sdktest points the official Huawei Cloud SMS SDK, unmodified, at a
// smsflow server: the client and the error check the web and e2e SDK tests
// share. Only tests import it, so no binary links the SDK.
package sdktest

import (
	"errors"
	"net"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	sms "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/sms/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Client builds the SDK's client for the server at addr (a loopback
// host:port), signing with ak/sk in projectID. No retries: a test sees every
// answer as the server gave it.
func Client(t testing.TB, addr, ak, sk, projectID, userAgent string) *sms.SmsClient {
	t.Helper()
	// The SDK may write ~/.huaweicloud: keep it out of the real home.
	t.Setenv("HOME", t.TempDir())
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host, "loopback")
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(projectID).SafeBuild()
	require.NoError(t, err)
	hc, err := sms.SmsClientBuilder().
		WithEndpoint("http://127.0.0.1:" + port).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithUserAgent(userAgent).WithRetries(0)).
		SafeBuild()
	require.NoError(t, err)
	return sms.NewSmsClient(hc)
}

// Err asserts err is the SDK's ServiceResponseError carrying our status, our
// SMS code, a message and the request id.
func Err(t testing.TB, err error, status int, code string, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	var se *sdkerr.ServiceResponseError
	require.True(t, errors.As(err, &se), "%T: %v", err, err)
	assert.Equal(t, status, se.StatusCode, se.ErrorMessage)
	assert.Equal(t, code, se.ErrorCode, se.ErrorMessage)
	assert.NotEmpty(t, se.ErrorMessage)
	assert.NotEmpty(t, se.RequestId, "X-Request-Id reaches the SDK")
}
