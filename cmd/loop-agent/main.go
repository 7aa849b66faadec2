// Command loop-agent is loop's in-container sync agent. loop copies it into a
// container once (as /.loop/agent), starts it through the exec API and keeps
// the stream open: each batch of file changes arrives on stdin as one
// wire.Request and is acknowledged with one wire.Reply on stdout. It needs
// nothing from the image (no shell, tar or rm), so scratch and distroless
// images work. It exits when stdin ends.
//
// Build it small and static:
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/loop-agent
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	if err := serve(bufio.NewReaderSize(os.Stdin, 256<<10), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "loop-agent: %v\n", err)
		os.Exit(1)
	}
}
