// Command gen builds the sync agent for every architecture loop embeds.
// `go generate ./daemon/internal/agent` (make agent) runs it with -o to
// rewrite the committed agents; make check-agent runs it with -check to
// verify, byte for byte, that they are what the current sources build.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/loop-dev/loop/daemon/internal/agent/agentbuild"
)

func main() {
	out := flag.String("o", "", "write the agents into this directory")
	check := flag.String("check", "", "rebuild the agents and compare them with those in this directory")
	flag.Parse()
	var err error
	switch {
	case *check != "" && *out == "":
		err = agentbuild.Check(*check)
	case *out != "" && *check == "":
		err = agentbuild.Generate(*out)
	default:
		err = fmt.Errorf("gen: give one of -o DIR or -check DIR")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
