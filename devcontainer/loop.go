package devcontainer

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// LoopPath is where `loop devcontainer up --up` puts loop in the container,
// next to the lifecycle markers; Down finds it there and stops that loop first.
const LoopPath = markerDir + "/bin/loop"

// StartLoop copies the loop binary at bin into the running dev container of
// c and runs `loop up --detach` there, with args, in the workspace folder as
// the remote user. It returns once that loop's API answers; a failure gives
// the command's output.
func (r *Runner) StartLoop(ctx context.Context, c *Config, bin string, args []string) error {
	ctr, ok, err := r.Find(ctx, c)
	if err != nil {
		return err
	}
	if !ok || ctr.State != container.StateRunning {
		return fmt.Errorf("start loop in %s: %w", c.LocalWorkspaceFolder, ErrNotRunning)
	}
	insp, err := r.cli.ContainerInspect(ctx, ctr.ID)
	if err != nil {
		return fmt.Errorf("inspect dev container %s: %w", shortID(ctr.ID), err)
	}
	img, err := r.cli.ImageInspect(ctx, insp.Image)
	if err != nil {
		return fmt.Errorf("inspect the dev container's image: %w", err)
	}
	if err := runnableIn(bin, img.Os, img.Architecture); err != nil {
		return fmt.Errorf("start loop in the dev container: %w", err)
	}
	if err := r.copyLoop(ctx, ctr.ID, bin); err != nil {
		return err
	}
	argv := append([]string{LoopPath, "up", "--detach"}, args...)
	var out bytes.Buffer
	_, code, err := r.exec(ctx, ctr.ID, container.ExecOptions{
		User: remoteUser(c, insp), Env: remoteEnv(c, insp), WorkingDir: c.WorkspaceFolder, Cmd: argv,
	}, nil, io.MultiWriter(&out, r.Out))
	if err != nil {
		return fmt.Errorf("start loop in the dev container: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("start loop in the dev container: %s exited with code %d: %s", strings.Join(argv, " "), code, tail(out.String(), 4096))
	}
	return nil
}

// runnableIn checks that the ELF file at bin runs on os/arch without a
// dynamic loader: the container shares nothing with the host but the kernel.
func runnableIn(bin, osName, arch string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("this loop (%s) is not a Linux binary; put loop for linux/%s in the image and run `loop up --detach` from postStartCommand: %w", bin, arch, err)
	}
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if osName != "" && osName != "linux" || machine != f.Machine {
		return fmt.Errorf("this loop (%s, %s) cannot run in a %s/%s container; put loop for that platform in the image and run `loop up --detach` from postStartCommand", bin, f.Machine, osName, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("this loop (%s) is linked dynamically (built with cgo) and may not run in the container; build it with CGO_ENABLED=0 (`make build` does)", bin)
		}
	}
	return nil
}

// copyLoop puts bin at LoopPath in container id through the engine's copy
// API, which needs no tools in the container.
func (r *Runner) copyLoop(ctx context.Context, id, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("copy loop into the dev container: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("copy loop into the dev container: %w", err)
	}
	pr, pw := io.Pipe()
	// The writer ends when the whole archive is written or the copy below
	// stops reading (CloseWithError on return unblocks it); done waits for it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		tw := tar.NewWriter(pw)
		err := writeTree(tw, strings.TrimPrefix(LoopPath, "/"), f, st.Size())
		if err == nil {
			err = tw.Close()
		}
		_ = pw.CloseWithError(err)
	}()
	err = r.cli.CopyToContainer(ctx, id, "/", pr, container.CopyToContainerOptions{})
	_ = pr.CloseWithError(io.ErrClosedPipe)
	<-done
	if err != nil {
		return fmt.Errorf("copy loop into the dev container: %w", err)
	}
	return nil
}

// writeTree writes name's parent folders and then name (mode 0755) to tw.
func writeTree(tw *tar.Writer, name string, data io.Reader, size int64) error {
	var dirs []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: size}); err != nil {
		return err
	}
	_, err := io.Copy(tw, data)
	return err
}

// stopLoop runs `loop down` with the loop StartLoop installed in container id,
// if there is one, so that what it started is removed with the container.
func (r *Runner) stopLoop(ctx context.Context, c *Config, id string) error {
	if _, err := r.cli.ContainerStatPath(ctx, id, LoopPath); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("look for loop in dev container %s: %w", shortID(id), err)
	}
	insp, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect dev container %s: %w", shortID(id), err)
	}
	var out bytes.Buffer
	_, code, err := r.exec(ctx, id, container.ExecOptions{
		User: remoteUser(c, insp), Env: remoteEnv(c, insp), WorkingDir: c.WorkspaceFolder, Cmd: []string{LoopPath, "down"},
	}, nil, io.MultiWriter(&out, r.Out))
	if err != nil {
		return fmt.Errorf("loop down in dev container %s: %w", shortID(id), err)
	}
	if code != 0 {
		return fmt.Errorf("loop down in dev container %s: exit code %d: %s", shortID(id), code, tail(out.String(), 4096))
	}
	return nil
}
