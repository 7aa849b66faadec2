package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// DockerAPI is the part of the Docker client the agent needs.
type DockerAPI interface {
	CopyToContainer(ctx context.Context, containerID, dstPath string, content io.Reader, options container.CopyToContainerOptions) error
	ContainerExecCreate(ctx context.Context, containerID string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
}

// Arch returns the (Go-named) architecture of the container's image.
func Arch(ctx context.Context, cli DockerAPI, containerID string) (string, error) {
	c, err := cli.ContainerInspect(ctx, containerID)
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", short(containerID), err)
	}
	img, err := cli.ImageInspect(ctx, c.Image)
	if err != nil {
		return "", fmt.Errorf("inspect image of container %s: %w", short(containerID), err)
	}
	if img.Architecture == "" {
		return "", fmt.Errorf("image %s of container %s names no architecture", short(c.Image), short(containerID))
	}
	return NormalizeArch(img.Architecture), nil
}

// Install copies the agent for the container's architecture to Path with one
// CopyToContainer call. It works on a created container that has not started,
// so callers can install before start, off the change path.
func Install(ctx context.Context, cli DockerAPI, containerID string) error {
	arch, err := Arch(ctx, cli, containerID)
	if err != nil {
		return err
	}
	bin, err := Binary(arch)
	if err != nil {
		return err
	}
	return install(ctx, cli, containerID, bin)
}

// Supervises reports whether the container's main process is the agent's
// supervisor (its entrypoint starts with Supervisor()): such a container
// cannot start without the agent installed.
func Supervises(ctx context.Context, cli DockerAPI, containerID string) bool {
	c, err := cli.ContainerInspect(ctx, containerID)
	return err == nil && c.Config != nil && IsSupervised(c.Config.Entrypoint)
}

func install(ctx context.Context, cli DockerAPI, containerID string, bin []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: ".loop/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: ".loop/agent", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar agent: %w", err)
		}
	}
	if _, err := tw.Write(bin); err != nil {
		return fmt.Errorf("tar agent: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar agent: %w", err)
	}
	if err := cli.CopyToContainer(ctx, containerID, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy sync agent into %s: %w", short(containerID), err)
	}
	return nil
}

// Start executes the installed agent in the running container, keeps the
// exec stream and checks it answers. The session outlives ctx, which bounds
// only the start. An agent that cannot be executed gives an error wrapping
// ErrNotInstalled.
func Start(ctx context.Context, cli DockerAPI, containerID string) (*Session, error) {
	ex, err := cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		Cmd:          []string{Path},
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create agent exec in %s: %w", short(containerID), err)
	}
	hj, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("attach agent exec in %s: %w", short(containerID), err)
	}
	out := &output{}
	out.r = &demux{r: hj.Reader, other: out}
	s := newSession(containerID, dockerStream{hj}, out)
	if said, err := s.greet(ctx); err != nil {
		// The runtime reports an exec it could not start on the stream and
		// as exit code 126/127; the inspect tells the two failures apart.
		if insp, ierr := cli.ContainerExecInspect(ctx, ex.ID); ierr == nil && !insp.Running && (insp.ExitCode == 126 || insp.ExitCode == 127) {
			return nil, fmt.Errorf("start %s in %s: exit code %d: %w: %s", Path, short(containerID), insp.ExitCode, ErrNotInstalled, said)
		}
		return nil, fmt.Errorf("start %s in %s: %w", Path, short(containerID), err)
	}
	return s, nil
}

// Connect returns a session with the current agent in the running
// container, installing it first when it is missing or differs from the
// binary this loop carries (an older loop installed it). A container whose
// architecture has no agent gives an error wrapping ErrNoBinary.
func Connect(ctx context.Context, cli DockerAPI, containerID string) (*Session, error) {
	arch, err := Arch(ctx, cli, containerID)
	if err != nil {
		return nil, err
	}
	bin, err := Binary(arch)
	if err != nil {
		return nil, err
	}
	return connectWith(ctx, bin,
		func() (*Session, error) { return Start(ctx, cli, containerID) },
		func() error { return install(ctx, cli, containerID, bin) })
}

// connectWith starts the agent, installing bin first when the running one is
// missing or is another binary.
func connectWith(ctx context.Context, bin []byte, start func() (*Session, error), install func() error) (*Session, error) {
	want := sha256Hex(bin)
	s, err := start()
	if err == nil {
		if s.ExeSHA256 == want {
			return s, nil
		}
		s.Close()
	} else if !errors.Is(err, ErrNotInstalled) && !errors.Is(err, ErrClosed) {
		return nil, err
	}
	if err := install(); err != nil {
		// A read-only file system, typically: the agent cannot run.
		return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	if s, err = start(); err != nil {
		return nil, err
	}
	if s.ExeSHA256 != want {
		s.Close()
		return nil, fmt.Errorf("start agent in %s: runs a binary with sha256 %s after installing %s", short(s.containerID), s.ExeSHA256, want)
	}
	return s, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// dockerStream is a Docker exec's hijacked connection.
type dockerStream struct{ hj types.HijackedResponse }

func (d dockerStream) Write(p []byte) (int, error)       { return d.hj.Conn.Write(p) }
func (d dockerStream) CloseWrite() error                 { return d.hj.CloseWrite() }
func (d dockerStream) Close() error                      { d.hj.Close(); return nil }
func (d dockerStream) SetDeadline(t time.Time) error     { return d.hj.Conn.SetDeadline(t) }
func (d dockerStream) SetReadDeadline(t time.Time) error { return d.hj.Conn.SetReadDeadline(t) }
