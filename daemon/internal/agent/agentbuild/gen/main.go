// Command gen cross-compiles the sync agent for every architecture loop
// embeds. `go generate ./daemon/internal/agent` runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/loop-dev/loop/daemon/internal/agent/agentbuild"
)

func main() {
	out := flag.String("o", "bin", "output directory")
	flag.Parse()
	if err := agentbuild.Build(*out, "amd64", "arm64"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
