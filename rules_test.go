package phasm_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/phasm-go/phasm"

// rule says what one package (or tree of packages) may import. Imports
// inside the module are matched by prefix; the standard library is any
// import path without a dot in its first element.
type rule struct {
	pkg string // relative folder; a trailing "/..." covers subfolders
	// allowed module-internal prefixes (relative), and external prefixes.
	internal []string
	external []string
	// pure packages: no clocks, no global randomness, no goroutines, no I/O.
	pure bool
}

var rules = []rule{
	{pkg: "machine", internal: []string{"machine/kv"}, pure: true},
	{pkg: "machine/kv", pure: true},
	{pkg: "machine/sim", internal: []string{"machine"}, pure: true},
	{pkg: "shard", internal: []string{"machine"}, pure: true},
	{pkg: "persistence", internal: []string{"machine"}},
	{pkg: "persistence/...", internal: []string{"machine", "persistence"},
		external: []string{"github.com/cockroachdb/pebble", "github.com/jackc/pgx/v5"}},
	{pkg: "cluster/...", internal: []string{"machine", "shard", "cluster"},
		external: []string{"github.com/hashicorp/raft", "github.com/hashicorp/raft-wal"}},
	{pkg: "examples/...", internal: []string{"machine", "persistence", "actor", "examples"}},
}

// Forbidden in pure packages: imports that reach the outside world, and
// calls that read the clock or the global random source.
var impureImports = []string{"os", "os/", "net", "net/", "io/ioutil", "syscall", "log", "time/tzdata", "crypto/rand", "math/rand"}

var clockCalls = map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true}

// Constructors of seeded generators are fine; every other package-level
// function of math/rand/v2 uses the global source.
var seededRand = map[string]bool{"New": true, "NewPCG": true, "NewChaCha8": true, "NewZipf": true}

func TestImportRules(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		r, ok := ruleFor(dir)
		if !ok {
			return nil
		}
		return checkFile(t.Errorf, path, dir, r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ruleFor returns the most specific rule for dir: the longest folder, and
// an exact folder before a tree of the same folder.
func ruleFor(dir string) (rule, bool) {
	best, bestScore := rule{}, -1
	for _, r := range rules {
		base, tree := strings.CutSuffix(r.pkg, "/...")
		score := -1
		switch {
		case !tree && dir == base:
			score = 2*len(base) + 1
		case tree && (dir == base || strings.HasPrefix(dir, base+"/")):
			score = 2 * len(base)
		}
		if score > bestScore {
			best, bestScore = r, score
		}
	}
	return best, bestScore >= 0
}

func checkFile(errorf func(string, ...any), path, dir string, r rule) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	names := map[string]string{} // local name -> import path
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		local := p[strings.LastIndex(p, "/")+1:]
		if p == "math/rand/v2" {
			local = "rand"
		}
		if imp.Name != nil {
			local = imp.Name.Name
		}
		names[local] = p
		if !importAllowed(p, dir, r) {
			errorf("%s: package %s may not import %q (see DESIGN.md, Packages)", path, dir, p)
		}
	}
	if !r.pure {
		return nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			errorf("%s: %s: pure package %s starts a goroutine", path, fset.Position(n.Pos()), dir)
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch names[id.Name] {
			case "time":
				if clockCalls[n.Sel.Name] {
					errorf("%s: %s: pure package %s calls time.%s (time is an input)", path, fset.Position(n.Pos()), dir, n.Sel.Name)
				}
			case "math/rand/v2":
				if !seededRand[n.Sel.Name] && ast.IsExported(n.Sel.Name) && !isRandType(n.Sel.Name) {
					errorf("%s: %s: pure package %s uses the global random source (rand.%s)", path, fset.Position(n.Pos()), dir, n.Sel.Name)
				}
			}
		}
		return true
	})
	return nil
}

func isRandType(name string) bool {
	switch name {
	case "Rand", "Source", "PCG", "ChaCha8", "Zipf":
		return true
	}
	return false
}

func importAllowed(p, dir string, r rule) bool {
	if rel, ok := strings.CutPrefix(p, module+"/"); ok {
		for _, allowed := range r.internal {
			if rel == allowed || strings.HasPrefix(rel, allowed+"/") {
				return true
			}
		}
		return false
	}
	if p == module {
		return false
	}
	first := strings.SplitN(p, "/", 2)[0]
	if !strings.Contains(first, ".") { // standard library
		if r.pure {
			for _, bad := range impureImports {
				if p == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(p, bad)) {
					return false
				}
				if bad == "math/rand" && p == "math/rand" {
					return false
				}
			}
		}
		return true
	}
	for _, ext := range r.external {
		if p == ext || strings.HasPrefix(p, ext+"/") {
			return true
		}
	}
	return false
}

// TestImportRulesCatchViolations makes sure the checker is not vacuous.
func TestImportRulesCatchViolations(t *testing.T) {
	dir := t.TempDir()
	src := `package machine
import (
	"os"
	"time"
	"math/rand/v2"
	"github.com/phasm-go/phasm/actor"
)
func f() { go func() {}(); _ = time.Now(); _ = rand.IntN(3); _ = os.Args; actor.X() }
`
	path := filepath.Join(dir, "bad.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	record := func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }
	if err := checkFile(record, path, "machine", rules[0]); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(got, "\n")
	want := []string{`may not import "os"`, `may not import "github.com/phasm-go/phasm/actor"`, "starts a goroutine", "time.Now", "rand.IntN"}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("violation %q not reported; got:\n%s", w, all)
		}
	}
}
