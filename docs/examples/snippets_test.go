package examples_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pages are the docs whose Go snippets must be compiled code from this
// folder.
var pages = []string{"concepts.md", "rules.md", "simulation.md", "architecture.md", "operations.md", "database-backed-state.md"}

// TestSnippetsAreCompiled checks that every ```go block of the pages is
// the text of a "// snippet: name" region of a Go file in this folder (or a
// part of one), so no page shows code that does not compile or that has
// drifted from what the Examples run.
func TestSnippetsAreCompiled(t *testing.T) {
	regions := readRegions(t)
	if len(regions) == 0 {
		t.Fatal("no snippet regions found")
	}
	block := regexp.MustCompile("(?s)```go\n(.*?)```")
	for _, page := range pages {
		md, err := os.ReadFile(filepath.Join("..", page))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(md), -1) {
			snippet := normalize(m[1])
			found := false
			for _, r := range regions {
				if strings.Contains(r, snippet) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: a Go snippet is not compiled code from docs/examples:\n%s", page, snippet)
			}
		}
	}
}

// readRegions returns the snippet regions of the Go files here, dedented.
func readRegions(t *testing.T) map[string]string {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var name string
		var lines []string
		for _, line := range strings.Split(string(b), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, "// snippet: "):
				name, lines = strings.TrimPrefix(trimmed, "// snippet: "), nil
			case trimmed == "// endsnippet" && name != "":
				out[name] = normalize(strings.Join(lines, "\n"))
				name = ""
			case name != "":
				lines = append(lines, line)
			}
		}
	}
	return out
}

// normalize removes the indentation common to every line and surrounding
// blank lines.
func normalize(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
		lines[i] = strings.TrimRight(lines[i], " \t")
	}
	return strings.Join(lines, "\n")
}
