package raft_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

const modulePath = "github.com/flotilla-dev/flotilla"

// forbiddenImports are the standard packages a pure core must not use: they
// bring goroutines, clocks, I/O or global randomness (see DESIGN.md, "PURE
// cores"). Randomness comes from Config.Rand, logging through Config.Logger.
var forbiddenImports = map[string]string{
	"net":          "network I/O",
	"os":           "operating system I/O",
	"time":         "wall clock (count ticks instead)",
	"sync":         "concurrency (a Node is driven by one caller)",
	"sync/atomic":  "concurrency (a Node is driven by one caller)",
	"math/rand":    "global randomness (use Config.Rand)",
	"math/rand/v2": "global randomness (use Config.Rand)",
	"log":          "global logging (use Config.Logger)",
	"log/slog":     "direct logging (use Config.Logger)",
	"io/ioutil":    "file I/O",
}

// goFiles returns the non-test .go files under dir, recursively, skipping
// testdata and hidden or underscore directories as the go tool does.
func goFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return files
}

// isStdlib reports whether path names a standard library package: by the go
// tool's convention, its first element has no dot.
func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// TestCoreImports keeps package raft and its sub-packages pure: no I/O,
// clocks, concurrency or global randomness, and no dependencies outside the
// standard library except raft's own sub-packages.
func TestCoreImports(t *testing.T) {
	files := goFiles(t, ".")
	if len(files) == 0 {
		t.Fatal("no Go files found under the raft directory; is the test running in it?")
	}
	sawQuorum := false
	fset := token.NewFileSet()
	for _, path := range files {
		sawQuorum = sawQuorum || filepath.Dir(path) == "quorum"
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		for _, spec := range f.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				t.Fatalf("%s: bad import path %s: %v", path, spec.Path.Value, err)
			}
			if why, bad := forbiddenImports[imp]; bad {
				t.Errorf("raft/%s imports %q (%s); the core must stay pure", filepath.ToSlash(path), imp, why)
				continue
			}
			if !isStdlib(imp) && imp != modulePath+"/raft" && !strings.HasPrefix(imp, modulePath+"/raft/") {
				t.Errorf("raft/%s imports %q, outside the standard library and raft/...; the core takes no dependencies",
					filepath.ToSlash(path), imp)
			}
		}
	}
	if !sawQuorum {
		t.Errorf("no files of raft/quorum among %v; the walk missed the sub-package", files)
	}
}

// TestPackageDocs checks that every package of the module has a doc comment:
// "// Package x ..." on the package clause of one of its files, or
// "// Command x ..." for a main package.
func TestPackageDocs(t *testing.T) {
	root := ".."
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s has no go.mod: %v", root, err)
	}
	byDir := map[string][]string{}
	for _, path := range goFiles(t, root) {
		byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], path)
	}
	fset := token.NewFileSet()
	for _, dir := range slices.Sorted(maps.Keys(byDir)) {
		name, documented := "", false
		for _, path := range byDir[dir] {
			f, err := parser.ParseFile(fset, path, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parsing %s: %v", path, err)
			}
			if isIgnored(f) {
				continue
			}
			name = f.Name.Name
			documented = documented || hasPackageDoc(f)
		}
		rel, _ := filepath.Rel(root, dir)
		if name != "" && !documented {
			want := "// Package " + name + " ..."
			if name == "main" {
				want = "// Command <binary> ..."
			}
			t.Errorf("package %s in %s has no doc comment; add %q above the package clause of one file (conventionally doc.go)",
				name, filepath.ToSlash(rel), want)
		}
	}
	if len(byDir) < 2 {
		t.Errorf("found only %d package directories under %s; is the test running in raft/?", len(byDir), root)
	}
}

// hasPackageDoc reports whether f's package clause carries a doc comment of
// the conventional form.
func hasPackageDoc(f *ast.File) bool {
	if f.Doc == nil {
		return false
	}
	text := f.Doc.Text()
	prefix := "Package " + f.Name.Name
	if f.Name.Name == "main" {
		prefix = "Command "
	}
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return false
	}
	if f.Name.Name == "main" {
		return rest != "" && !unicode.IsSpace(rune(rest[0]))
	}
	return rest == "" || rest[0] == ' ' || rest[0] == '\n' || rest[0] == '.'
}

// isIgnored reports whether f is excluded from every build by a
// "//go:build ignore" line, as generator scripts are.
func isIgnored(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() >= f.Package {
			break
		}
		for _, c := range cg.List {
			if c.Text == "//go:build ignore" {
				return true
			}
		}
	}
	return false
}
