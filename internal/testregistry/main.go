// Command testregistry is the image registry of the test cluster (make
// test-cluster): an OCI distribution registry (go-containerregistry's) on a
// loopback address, blobs on disk, manifests in memory. The cluster advertises
// it with a KEP-1755 local-registry-hosting ConfigMap, so loop pushes built
// images to it as it would to a kind cluster's local registry. With -image it
// also serves images of one static binary that it makes at start (the real
// node's pause image), so they are there again after a restart.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// images are the -image flags: NAME:TAG=FILE, repeatable.
type images []string

func (i *images) String() string     { return strings.Join(*i, ",") }
func (i *images) Set(v string) error { *i = append(*i, v); return nil }

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to serve on")
	dir := flag.String("blobs", "", "directory for blobs (default: in memory)")
	var seed images
	flag.Var(&seed, "image", "serve NAME:TAG=FILE: an image of the one static binary FILE, its entrypoint (repeatable)")
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
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }() // ends with Shutdown below
	for _, spec := range seed {
		if err := push(ctx, l.Addr().String(), spec); err != nil {
			fmt.Fprintln(os.Stderr, "testregistry:", err)
			os.Exit(1)
		}
	}
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

// push serves spec (NAME:TAG=FILE) from the registry at addr: an image whose one
// layer holds FILE as /BASENAME, its entrypoint, for linux on this architecture.
func push(ctx context.Context, addr, spec string) error {
	ref, file, ok := strings.Cut(spec, "=")
	repo, tag, ok2 := strings.Cut(ref, ":")
	if !ok || !ok2 {
		return fmt.Errorf("-image %q: want NAME:TAG=FILE", spec)
	}
	bin, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	base := path.Base(file)
	if err := tw.WriteHeader(&tar.Header{Name: base, Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH,
		RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Entrypoint: []string{"/" + base}}})
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	// The distribution API by hand (blobs by monolithic POST, then the manifest):
	// go-containerregistry's remote package would bring the Docker CLI's config code.
	api := "http://" + addr + "/v2/" + repo + "/"
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	cfgDigest, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	layerData, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	layerDigest, err := layer.Digest()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	for _, b := range []struct {
		digest v1.Hash
		data   []byte
	}{{cfgDigest, cfg}, {layerDigest, layerData}} {
		if err := send(ctx, http.MethodPost, api+"blobs/uploads/?digest="+b.digest.String(), "application/octet-stream", b.data); err != nil {
			return fmt.Errorf("serve image %s: %w", ref, err)
		}
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("-image %s: %w", ref, err)
	}
	if err := send(ctx, http.MethodPut, api+"manifests/"+tag, string(mt), manifest); err != nil {
		return fmt.Errorf("serve image %s: %w", ref, err)
	}
	return nil
}

// send makes one request of the registry and wants a 2xx answer.
func send(ctx context.Context, method, url, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
