// Command pause is the sandbox ("pause") process of the test cluster's real node: it
// holds a pod's namespaces and does nothing until it is told to stop. The usual
// registry.k8s.io/pause image cannot be pulled here, so scripts/test-cluster.sh builds
// this one (static, no libc) and the test registry serves it as an image of one file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// No reaping: the test pods do not share their process namespace, so no
	// orphan is ever given to this process.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
