//go:build !unix

package verify

import "time"

func processCPU() (time.Duration, bool) { return 0, false }

func processMaxRSS() (int64, bool) { return 0, false }
