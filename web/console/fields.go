package console

// field is one labelled form input as templates/fields.html draws it: the
// create and edit forms of every object share that one partial, so a
// field's label, its error (SMS code and message, next to it) and its hint
// look and behave alike everywhere.
type field struct {
	Name, Label, Value, Err, Hint string
	// Secret draws a write-only password input: never prefilled.
	Secret bool
	// Options makes a select; Value is the selected one.
	Options []option
}

// option is a select's choice.
type option struct{ Value, Label string }

// newField is the template function `field errs name label value [hint]`.
func newField(errs map[string]string, name, label, value string, hint ...string) field {
	f := field{Name: name, Label: label, Value: value, Err: errs[name]}
	if len(hint) > 0 {
		f.Hint = hint[0]
	}
	return f
}

// newSecretField is `secret errs name label hint`: a password input that
// never shows a value back.
func newSecretField(errs map[string]string, name, label, hint string) field {
	return field{Name: name, Label: label, Err: errs[name], Hint: hint, Secret: true}
}

// newChoice is `choice errs name label value v1 l1 v2 l2 ...`: a select.
// A current value outside the list stays selectable, so a form sent back
// with an invalid choice shows what was sent next to the error.
func newChoice(errs map[string]string, name, label, value string, pairs ...string) field {
	f := field{Name: name, Label: label, Value: value, Err: errs[name]}
	known := false
	for i := 0; i+1 < len(pairs); i += 2 {
		f.Options = append(f.Options, option{pairs[i], pairs[i+1]})
		known = known || pairs[i] == value
	}
	if !known && value != "" {
		f.Options = append(f.Options, option{value, value})
	}
	return f
}
