package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// customHealthTimeout bounds the wait for a k8s_custom_deploy's objects to be
// healthy after its apply_cmd, as a sync wave's wait is bounded.
const customHealthTimeout = 5 * time.Minute

// imageEnv is what Tilt gives a k8s_custom_deploy's commands for image dep i:
// TILT_IMAGE_MAP_i, the image's name, and TILT_IMAGE_i, the built ref as the
// cluster pulls it.
func imageEnv(deps []string, built render.Images) map[string]string {
	env := map[string]string{}
	for i, ref := range deps {
		env[fmt.Sprintf("TILT_IMAGE_MAP_%d", i)] = strings.NewReplacer("/", "_", "%", "_").Replace(ref)
		env[fmt.Sprintf("TILT_IMAGE_%d", i)] = built[ref]
	}
	return env
}

// runCustom runs a k8s_custom_deploy command in dir with env added to loop's
// environment; its stderr goes to logs, its stdout is returned.
func runCustom(ctx context.Context, c model.Cmd, dir string, env map[string]string, logs io.Writer) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, logs
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("run %s: %w", strings.Join(c.Argv, " "), err)
	}
	return out.Bytes(), nil
}

// applyCustom runs the apply_cmd with the built images in its environment
// and returns the objects it printed, as Tilt takes them: what was deployed.
// It then waits until they are healthy.
func (d *Deployer) applyCustom(ctx context.Context, cd *model.CustomDeploy, built render.Images, logs io.Writer) ([]*unstructured.Unstructured, error) {
	env := imageEnv(cd.ImageDeps, built)
	for k, v := range cd.ApplyEnv {
		env[k] = v
	}
	out, err := runCustom(ctx, cd.ApplyCmd, cd.ApplyDir, env, logs)
	if err != nil {
		return nil, fmt.Errorf("k8s_custom_deploy %s: apply_cmd: %w", cd.Name, err)
	}
	objs, err := render.Parse(out)
	if err != nil {
		return nil, fmt.Errorf("k8s_custom_deploy %s: apply_cmd must print the deployed objects as YAML: %w", cd.Name, err)
	}
	for _, o := range objs {
		fmt.Fprintf(logs, "applied %s\n", render.Key(o))
	}
	if err := d.syncer.WaitHealthy(ctx, objs, customHealthTimeout); err != nil {
		return objs, fmt.Errorf("k8s_custom_deploy %s: %w", cd.Name, err)
	}
	return objs, nil
}

// DeleteCustom runs the delete_cmd (loop down, or the resource leaving the config).
func DeleteCustom(ctx context.Context, cd *model.CustomDeploy, logs io.Writer) error {
	if _, err := runCustom(ctx, cd.DeleteCmd, cd.DeleteDir, cd.DeleteEnv, logs); err != nil {
		return fmt.Errorf("k8s_custom_deploy %s: delete_cmd: %w", cd.Name, err)
	}
	return nil
}

// customMatch picks the containers a k8s_custom_deploy's live_update
// updates, as Tilt: by container name (container_selector), else those that
// run the image_selector's image (any tag), else the built image dep.
func customMatch(cd *model.CustomDeploy, builtRef string) (string, func(corev1.Container) bool) {
	return selectorMatch(cd.ImageSelector, cd.ContainerSelector, builtRef)
}

// selectorMatch picks containers by name (containerSel), else by the image
// imageSel names (any tag), else those running builtRef.
func selectorMatch(imageSel, containerSel, builtRef string) (string, func(corev1.Container) bool) {
	switch {
	case containerSel != "":
		return "container " + containerSel, func(c corev1.Container) bool { return c.Name == containerSel }
	case imageSel != "" && builtRef == "":
		want := render.NormalizedName(imageSel)
		return imageSel, func(c corev1.Container) bool { return render.NormalizedName(c.Image) == want }
	}
	return builtRef, func(c corev1.Container) bool { return c.Image == builtRef }
}
