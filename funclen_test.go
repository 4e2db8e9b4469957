package recoup_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds the functions of workflows/ and activities/ (non-test code): a longer
// one is split into named steps.
const maxFuncLines = 60

func TestWorkflowAndActivityFunctionsAreShort(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{"workflows", "activities"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				if n := fset.Position(fn.Body.Rbrace).Line - fset.Position(fn.Pos()).Line + 1; n > maxFuncLines {
					t.Errorf("%s: %s is %d lines long, more than %d: split it into named steps",
						fset.Position(fn.Pos()), fn.Name.Name, n, maxFuncLines)
				}
			}
		}
	}
}
