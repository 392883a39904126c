// Package core is the engine-neutral core of package connections, the part
// every I/O engine uses, in a package of its own so that engines can live
// in packages of their own too (issue 19, ENGINES.md). It holds today the
// buffer pool (BufferPool, Buffer, InputSize) and the pool of callback
// tasks (TaskPool); the rest of the core (the Runtime of a Server, the
// engine-independent part of a connection, the engine contract) moves here
// next, as ENGINES.md plans.
//
// Only connections and its engines import it.
package core
