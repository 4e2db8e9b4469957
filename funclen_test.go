package recoup_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds the functions of workflows/ and activities/ (non-test code): a longer
// one is split into named steps.
const maxFuncLines = 60

// maxModuleFuncLines bounds the functions of every other non-test file of the module
// (generated files and `//go:build ignore` generators aside).
const maxModuleFuncLines = 100

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
			checkFuncLines(t, fset, f, maxFuncLines)
		}
	}
}

func TestModuleFunctionsAreShort(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) || buildIgnored(f) {
			return nil
		}
		checkFuncLines(t, fset, f, maxModuleFuncLines)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// buildIgnored reports whether the file is left out of every build (`//go:build ignore`,
// e.g. a generator run with go run).
func buildIgnored(f *ast.File) bool {
	for _, g := range f.Comments {
		if g.Pos() >= f.Package {
			break
		}
		for _, c := range g.List {
			if strings.TrimSpace(c.Text) == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}

// checkFuncLines fails the test for each function of f longer than limit lines.
func checkFuncLines(t *testing.T, fset *token.FileSet, f *ast.File, limit int) {
	t.Helper()
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		pos := fset.Position(fn.Pos())
		if n := fset.Position(fn.Body.Rbrace).Line - pos.Line + 1; n > limit {
			t.Errorf("%s: %s is %d lines long, more than %d: split it into named steps",
				pos, fn.Name.Name, n, limit)
		}
	}
}
