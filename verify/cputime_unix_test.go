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

// processMaxRSS returns the process's peak resident set size in bytes (Linux and BSDs
// report ru_maxrss in KiB; macOS in bytes, which this then overstates).
func processMaxRSS() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return int64(ru.Maxrss) * 1024, true
}
