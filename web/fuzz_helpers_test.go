package web

import (
	"bytes"

	"github.com/smsflow/smsflow/internal/identity/secret"
	"github.com/smsflow/smsflow/internal/store"
)

func newEmptyTemplate() *store.Template { return &store.Template{} }

func testBox() *secret.Box {
	b, err := secret.NewBox(bytes.Repeat([]byte{1}, secret.KeySize))
	if err != nil {
		panic(err)
	}
	return b
}
