package connections

import (
	"github.com/goes-project/goes/connections/internal/core"
)

// engineTable makes rt's engines, the standard one first: it is the
// registration of every engine (the standard one here, the platform's in
// platformEngines), made anew for each Server, with no package-level
// state.
func engineTable(rt *core.Runtime) (fallback core.FallbackEngine, all []core.Engine) {
	fallback = newStdEngine(rt)
	return fallback, append([]core.Engine{fallback}, platformEngines(rt)...)
}
