//go:build unix

package trace

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user+system, every thread including the garbage
// collector's) the test process has used: benchmarks report it per flow, because wall time
// on a shared machine mostly measures the other tenants.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
