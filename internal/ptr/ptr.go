// Package ptr holds the one helper for the optional fields of the SMS API's
// JSON shapes and the store's rows, which are pointers so that "absent" and
// "zero" differ. Go 1.26's new(expr) makes such a pointer; Deref reads one.
package ptr

// Deref returns *p, or the zero value of T when p is nil: the reading of an
// optional field whose absence means its zero value.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
