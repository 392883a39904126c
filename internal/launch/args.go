package launch

import (
	"path/filepath"
	"strings"
)

// AbsArgs makes the daemon's arguments independent of the working
// directory: the run dir and config are passed as absolute paths.
func AbsArgs(args []string, runDir string) ([]string, error) {
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "run-dir" && name != "config" && name != "c") {
			out = append(out, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				out = append(out, a)
				continue
			}
			i++
			val = args[i]
		}
		if name == "run-dir" {
			continue // passed below
		}
		abs, err := filepath.Abs(val)
		if err != nil {
			return nil, err
		}
		out = append(out, "--config="+abs)
	}
	return append(out, "--run-dir="+runDir), nil
}
