package cli

import "flag"

// update rewrites the golden files of the CLI tests (go test ./internal/cli -args -update).
var update = flag.Bool("update", false, "rewrite golden files in testdata/")
