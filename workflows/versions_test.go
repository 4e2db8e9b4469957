package workflows

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// Every change id a workflow passes to workflow.GetVersion is a constant of the ledger in
// versions.go, directly or through a helper's parameter (changed(ctx, ChangeX)), and the
// ledger lists each of them once.
func TestGetVersionIDsAreInTheLedger(t *testing.T) {
	inLedger := map[string]string{} // constant name -> id
	ids := map[string]bool{}
	for _, c := range ledger {
		if ids[c.ID] {
			t.Errorf("ledger lists change id %q twice", c.ID)
		}
		ids[c.ID] = true
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		if name == "versions.go" {
			for _, decl := range f.Decls {
				if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
					for _, spec := range g.Specs {
						v := spec.(*ast.ValueSpec)
						for i, n := range v.Names {
							lit, ok := v.Values[i].(*ast.BasicLit)
							if !ok {
								t.Fatalf("versions.go: %s is not a string literal", n.Name)
							}
							id := strings.Trim(lit.Value, `"`)
							if !ids[id] {
								t.Errorf("versions.go: constant %s (%q) is not in ledger", n.Name, id)
							}
							inLedger[n.Name] = id
						}
					}
				}
			}
		}
	}
	if len(inLedger) != len(ledger) {
		t.Errorf("versions.go declares %d change constants, ledger lists %d", len(inLedger), len(ledger))
	}

	// helpers: functions that pass one of their parameters to GetVersion as the change id,
	// by name -> the parameter's position.
	helpers := map[string]int{"GetVersion": 1}
	calls := 0
	for changedSet := true; changedSet; {
		changedSet = false
		for _, f := range parsed {
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				params := paramIndex(fn)
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					_, arg, ok := versionArg(n, helpers)
					if !ok {
						return true
					}
					if id, ok := arg.(*ast.Ident); ok {
						if i, isParam := params[id.Name]; isParam {
							if _, known := helpers[fn.Name.Name]; !known {
								helpers[fn.Name.Name] = i
								changedSet = true
							}
						}
					}
					return true
				})
			}
		}
	}
	for _, f := range parsed {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			params := paramIndex(fn)
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				name, arg, ok := versionArg(n, helpers)
				if !ok {
					return true
				}
				calls++
				id, isIdent := arg.(*ast.Ident)
				switch {
				case isIdent && inLedger[id.Name] != "":
				case isIdent && hasParam(params, id.Name) && helpers[fn.Name.Name] == params[id.Name]:
					// a helper passing its parameter on: its callers are checked
				default:
					t.Errorf("%s: %s(…) in %s is given change id %s, which is not a constant of the ledger in versions.go",
						fset.Position(arg.Pos()), name, fn.Name.Name, exprString(arg))
				}
				return true
			})
		}
	}
	if calls < len(ledger) {
		t.Errorf("found %d GetVersion calls (direct or through helpers), fewer than the %d ledger entries: is the scan broken?", calls, len(ledger))
	}
}

// versionArg reports whether n calls workflow.GetVersion or a helper, and its change-id argument.
func versionArg(n ast.Node, helpers map[string]int) (string, ast.Expr, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok {
		return "", nil, false
	}
	var name string
	switch fun := call.Fun.(type) {
	case *ast.SelectorExpr:
		if x, ok := fun.X.(*ast.Ident); !ok || x.Name != "workflow" || fun.Sel.Name != "GetVersion" {
			return "", nil, false
		}
		name = "workflow.GetVersion"
	case *ast.Ident:
		if fun.Name == "GetVersion" {
			return "", nil, false
		}
		name = fun.Name
	default:
		return "", nil, false
	}
	key := name
	if key == "workflow.GetVersion" {
		key = "GetVersion"
	}
	i, ok := helpers[key]
	if !ok || i >= len(call.Args) {
		return "", nil, false
	}
	return name, call.Args[i], true
}

func paramIndex(fn *ast.FuncDecl) map[string]int {
	m := map[string]int{}
	i := 0
	for _, field := range fn.Type.Params.List {
		if len(field.Names) == 0 {
			i++
			continue
		}
		for _, n := range field.Names {
			m[n.Name] = i
			i++
		}
	}
	return m
}

func hasParam(params map[string]int, name string) bool { _, ok := params[name]; return ok }

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.BasicLit:
		return x.Value
	case *ast.Ident:
		return x.Name
	}
	return "an expression"
}
