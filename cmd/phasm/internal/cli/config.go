package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configValue is one value from a config file for a flag of the command
// being run.
type configValue struct {
	flag  string
	field string // as written: "node.data" or "log-format"
	value string
	line  int
}

// readConfigFile reads a JSON config file: an object whose keys are flag
// names (for any command that has the flag) or command names holding an
// object of that command's flag names. It returns the values for cmd and
// every problem found anywhere in the file, each naming the file, the line
// and the field.
func readConfigFile(path string, root, cmd *cobra.Command) ([]configValue, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{fmt.Errorf("config file %s: %v", path, err)}
	}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		line := 1
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case asErr(err, &se):
			line = lineAt(data, se.Offset)
		case asErr(err, &te):
			line = lineAt(data, te.Offset)
		}
		return nil, []error{fmt.Errorf("%s:%d: not a JSON object of settings: %v", path, line, err)}
	}
	lines := keyLines(data)
	commands := map[string]*cobra.Command{}
	anyFlag := map[string]bool{}
	for _, c := range root.Commands() {
		commands[c.Name()] = c
		c.Flags().VisitAll(func(f *pflag.Flag) { anyFlag[f.Name] = true })
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { anyFlag[f.Name] = true })
	}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) { anyFlag[f.Name] = true })

	var values []configValue
	var problems []error
	bad := func(field string, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s:%d: field %q: %s", path, lines[field], field, fmt.Sprintf(format, args...)))
	}
	take := func(c *cobra.Command, field, name string, raw json.RawMessage) {
		if name == "config" || name == "help" {
			bad(field, "cannot be set in a config file")
			return
		}
		s, err := scalar(raw)
		if err != nil {
			bad(field, "%v", err)
			return
		}
		if c == cmd && cmd.Flags().Lookup(name) != nil {
			values = append(values, configValue{flag: name, field: field, value: s, line: lines[field]})
		}
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := doc[k]
		if sub, isCmd := commands[k]; isCmd {
			var section map[string]json.RawMessage
			if err := json.Unmarshal(raw, &section); err != nil || section == nil {
				bad(k, "a command's section must be an object of its flags")
				continue
			}
			names := make([]string, 0, len(section))
			for n := range section {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				field := k + "." + n
				if sub.Flags().Lookup(n) == nil && sub.InheritedFlags().Lookup(n) == nil {
					bad(field, "%q has no flag --%s", "phasm "+k, n)
					continue
				}
				take(sub, field, n, section[n])
			}
			continue
		}
		if !anyFlag[k] {
			bad(k, "no command has a flag --%s", k)
			continue
		}
		s, err := scalar(raw)
		if err != nil {
			bad(k, "%v", err)
			continue
		}
		if cmd.Flags().Lookup(k) != nil {
			values = append(values, configValue{flag: k, field: k, value: s, line: lines[k]})
		}
	}
	return values, problems
}

func asErr[T error](err error, target *T) bool {
	t, ok := err.(T)
	if ok {
		*target = t
	}
	return ok
}

// scalar turns a JSON value into a flag's string form: strings as they
// are, numbers and booleans as written, arrays joined with commas.
func scalar(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return fmt.Sprint(x), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			switch y := e.(type) {
			case string:
				parts[i] = y
			case json.Number:
				parts[i] = y.String()
			default:
				return "", fmt.Errorf("a list may hold only strings and numbers")
			}
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("want a string, number, boolean or list, got %s", strings.TrimSpace(string(raw)))
	}
}

// lineAt returns the 1-based line of byte offset off.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// keyLines returns the line of every key of the top-level object and of
// its nested objects ("section.key").
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []string // path of object keys
	type frame struct {
		object  bool
		wantKey bool
	}
	var frames []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		top := len(frames) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				frames = append(frames, frame{object: t == '{', wantKey: t == '{'})
			case '}', ']':
				frames = frames[:top]
				if len(stack) > len(frames) {
					stack = stack[:len(frames)]
				}
				if len(frames) > 0 && frames[len(frames)-1].object {
					frames[len(frames)-1].wantKey = true
					if len(stack) >= len(frames) {
						stack = stack[:len(frames)-1]
					}
				}
			}
		default:
			if top >= 0 && frames[top].object && frames[top].wantKey {
				key, _ := t.(string)
				stack = append(stack[:top], key)
				out[strings.Join(stack, ".")] = lineAt(data, dec.InputOffset())
				frames[top].wantKey = false
				continue
			}
			if top >= 0 && frames[top].object {
				frames[top].wantKey = true
				stack = stack[:top]
			}
		}
	}
}
