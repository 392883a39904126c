// Package prefetch asks the CPU to start loading memory a loop will touch
// a few steps later. A fan-out to many connections walks member after
// member whose state is cold by then; a load that misses stalls the loop
// for the memory's latency, a prefetch issued a few members ahead does
// not (it never blocks, never faults: any address may be given).
//
// On amd64 and arm64 Range issues one prefetch instruction per cache
// line; elsewhere it does nothing.
package prefetch

// Line is the cache line size Range steps by.
const Line = 64
