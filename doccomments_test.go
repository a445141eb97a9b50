package smsflow_test

import (
	"cmp"
	"go/ast"
	"go/token"
	"strings"
	"testing"
)

// TestDocCommentsNameTheirIdentifier keeps comments on declarations in
// godoc form: a comment on a function, a type, or a lone variable or
// constant begins with its name ("Name does…", or "A Name…"), so go doc and
// a reader's eye find what it documents. Tests are left to narrate.
func TestDocCommentsNameTheirIdentifier(t *testing.T) {
	eachGoFile(t, false, func(fset *token.FileSet, f *ast.File) {
		check := func(doc *ast.CommentGroup, name string) {
			if doc == nil || name == "_" {
				return
			}
			words := strings.Fields(doc.Text())
			if len(words) == 0 || strings.HasPrefix(words[0], "Deprecated") {
				return
			}
			if (words[0] == "A" || words[0] == "An" || words[0] == "The") && len(words) > 1 {
				words = words[1:]
			}
			if w := strings.TrimRight(words[0], ":,."); w != name {
				t.Errorf("%s: the comment on %s begins %q", fset.Position(doc.Pos()), name, strings.Join(words[:min(4, len(words))], " "))
			}
		}
		for _, d := range f.Decls {
			switch x := d.(type) {
			case *ast.FuncDecl:
				check(x.Doc, x.Name.Name)
			case *ast.GenDecl:
				if len(x.Specs) != 1 {
					continue // a group's comment speaks of the group
				}
				doc := x.Doc
				switch s := x.Specs[0].(type) {
				case *ast.TypeSpec:
					check(cmp.Or(doc, s.Doc), s.Name.Name)
				case *ast.ValueSpec:
					if len(s.Names) == 1 {
						check(cmp.Or(doc, s.Doc), s.Names[0].Name)
					}
				}
			}
		}
	})
}
