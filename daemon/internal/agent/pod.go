package agent

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"time"
)

// In a pod the agent must be in the application's container before its
// process starts, and the exec API can only reach a running container. So
// loop adds an init container running its agent image (ImageRootfs), which
// copies the agent into an emptyDir volume (PodVolume) that the application's
// container mounts at PodDir: the supervisor runs from Path there, and its
// restart socket lives there too. An emptyDir is writable whatever the
// container's user and root filesystem, and outlives container restarts
// within the pod.
const (
	// PodVolume names the emptyDir volume and the init container.
	PodVolume = "loop-agent"
	// PodDir is where the application's container mounts the volume: Path's
	// directory.
	PodDir = "/.loop"
	// ImageBinary is where the agent is in loop's agent image.
	ImageBinary = "/loop-agent"
	// ImageUser runs the init container: any user may write an emptyDir, and
	// a numeric non-root user passes runAsNonRoot and restricted pod security.
	ImageUser = 65534
)

// PodInstallCommand is the init container's command: the agent image's
// binary copies itself to Path in the volume.
func PodInstallCommand() []string { return []string{ImageBinary, "install", Path} }

// ImageRootfs returns the agent for linux/arch as the one layer of an image
// (a tar holding ImageBinary, mode 0755) and the agent's sha256, which names
// the image.
func ImageRootfs(arch string) ([]byte, string, error) {
	bin, err := Binary(arch)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: path.Base(ImageBinary), Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, "", fmt.Errorf("write agent image layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, "", fmt.Errorf("write agent image layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("write agent image layer: %w", err)
	}
	return buf.Bytes(), sha256Hex(bin), nil
}
