//go:build unix

package verify

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user+system, all threads, the garbage collector's too)
// the test process has used: the benchmarks report it per op because wall time on a shared
// machine mostly measures the other tenants.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
