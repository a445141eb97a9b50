package smsflow_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// shadowable are the names a declaration must not take: Go's predeclared
// functions, types and constants, and errors, the package every file may
// need. A variable or parameter named min or print hides the builtin for
// the rest of its scope, and the next edit there calls the wrong thing.
var shadowable = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`append cap clear close complex copy delete imag len make max min new panic print
		println real recover any bool byte comparable complex64 complex128 error float32 float64 int int8 int16 int32
		int64 rune string uint uint8 uint16 uint32 uint64 uintptr true false iota nil errors`) {
		shadowable[n] = true
	}
}

// TestNoBuiltinShadowed: no function, parameter, result, variable, type or
// import in the module's Go files is named like a builtin (the shadow
// analyzer of go vet is not installed here).
func TestNoBuiltinShadowed(t *testing.T) {
	eachGoFile(t, true, func(fset *token.FileSet, f *ast.File) {
		check := func(id *ast.Ident, what string) {
			if id != nil && shadowable[id.Name] {
				t.Errorf("%s: %s named %q shadows the builtin", fset.Position(id.Pos()), what, id.Name)
			}
		}
		fields := func(fl *ast.FieldList, what string) {
			if fl != nil {
				for _, fld := range fl.List {
					for _, id := range fld.Names {
						check(id, what)
					}
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				if x.Recv == nil {
					check(x.Name, "function")
				}
				fields(x.Recv, "receiver")
			case *ast.FuncType:
				fields(x.TypeParams, "type parameter")
				fields(x.Params, "parameter")
				fields(x.Results, "result")
			case *ast.AssignStmt:
				if x.Tok == token.DEFINE {
					for _, l := range x.Lhs {
						if id, ok := l.(*ast.Ident); ok {
							check(id, "variable")
						}
					}
				}
			case *ast.RangeStmt:
				if x.Tok == token.DEFINE {
					for _, e := range []ast.Expr{x.Key, x.Value} {
						if id, ok := e.(*ast.Ident); ok {
							check(id, "variable")
						}
					}
				}
			case *ast.ValueSpec:
				for _, id := range x.Names {
					check(id, "variable")
				}
			case *ast.TypeSpec:
				check(x.Name, "type")
			case *ast.ImportSpec:
				check(x.Name, "import")
			}
			return true
		})
	})
}

// eachGoFile parses every Go file of the module (tests too when withTests),
// with its comments, and hands it to fn; hidden folders and testdata are
// left out.
func eachGoFile(t *testing.T, withTests bool, fn func(fset *token.FileSet, f *ast.File)) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || (!withTests && strings.HasSuffix(path, "_test.go")) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		fn(fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
