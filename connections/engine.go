package connections

import (
	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/std"
)

// engineTable makes rt's engines, the standard one first: it is the
// registration of every engine (the standard one here, the platform's in
// platformEngines), made anew for each Server, with no package-level
// state. Each engine is a package of its own under connections/internal
// implementing core.Engine (the standard one core.FallbackEngine too);
// nothing but this table names them (ENGINES.md).
func engineTable(rt *core.Runtime) (fallback core.FallbackEngine, all []core.Engine) {
	fallback = std.New(rt)
	return fallback, append([]core.Engine{fallback}, platformEngines(rt)...)
}
