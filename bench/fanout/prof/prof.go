// Package prof lets the driver CPU-profile a benchmark server for exactly
// the publish window: while the file "on" exists in the directory named by
// the environment variable BENCH_FANOUT_PPROF, the process profiles itself
// into <name>-<pid>.pprof.part there, renamed to .pprof once written.
package prof

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

// Env names the trigger directory. Not GOES_*: a goes master passes its
// environment to the workers without the GOES_ variables, which are its own.
const Env = "BENCH_FANOUT_PPROF"

// Rate is the sampling rate, in Hz (the runtime's default is 100).
const Rate = 500

// Watch starts the watcher when Env is set; name tags the profile file.
func Watch(name string) {
	dir := os.Getenv(Env)
	if dir == "" {
		return
	}
	go watch(dir, name)
}

func watch(dir, name string) {
	trigger := filepath.Join(dir, "on")
	out := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, os.Getpid()))
	var f *os.File
	for range time.Tick(20 * time.Millisecond) {
		_, err := os.Stat(trigger)
		on := err == nil
		switch {
		case on && f == nil:
			if f, err = os.Create(out + ".part"); err != nil {
				fmt.Fprintln(os.Stderr, "prof:", err)
				return
			}
			// Before StartCPUProfile, which then keeps this rate (and
			// prints that it cannot set its own).
			runtime.SetCPUProfileRate(Rate)
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "prof:", err)
				return
			}
		case !on && f != nil:
			pprof.StopCPUProfile()
			f.Close()
			os.Rename(out+".part", out)
			f = nil
			out = filepath.Join(dir, fmt.Sprintf("%s-%d-%d.pprof", name, os.Getpid(), time.Now().UnixNano()))
		}
	}
}
