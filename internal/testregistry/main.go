// Command testregistry is the image registry of the test cluster (make
// test-cluster): an OCI distribution registry (go-containerregistry's) on a
// loopback address, blobs on disk, manifests in memory. The cluster advertises
// it with a KEP-1755 local-registry-hosting ConfigMap, so loop pushes built
// images to it as it would to a kind cluster's local registry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to serve on")
	dir := flag.String("blobs", "", "directory for blobs (default: in memory)")
	flag.Parse()
	opts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "testregistry:", err)
			os.Exit(1)
		}
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(*dir)))
	}
	srv := &http.Server{Addr: *addr, Handler: registry.New(opts...), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }() // ends with Shutdown below
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
	}
}
