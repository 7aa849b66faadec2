package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/model"
)

// restart_container() in a pod restarts the process in place under the agent's
// supervisor, as on Compose. The agent must be in the container before its
// process starts, on any cluster, with nothing but the registry (or kind node
// load) the built images already go through: loop imports a one-file image
// holding the agent into the Docker engine, ships it the way it ships built
// images, and adds to the pod template an init container from it that copies
// the agent into an emptyDir the application's container mounts at agent.PodDir
// (see package agent). The built image itself is left as built.

// ImageCommand is what an image runs when the pod template does not say: its
// config's entrypoint and cmd.
type ImageCommand struct {
	Entrypoint, Cmd []string
}

// effectiveCommand is what the kubelet runs for a container with command and
// args (nil: not set) from an image with img: command replaces the entrypoint
// and then the image's cmd is dropped; args replace the cmd. The image's parts
// are written as the pod template must say them: the kubelet expands $(VAR)
// and $$ in command and args, never in the image's own.
func effectiveCommand(command, args []string, img ImageCommand) (ep, cmd []string) {
	switch {
	case command != nil && args != nil:
		return command, args
	case command != nil:
		return command, nil
	case args != nil:
		return escapeDollars(img.Entrypoint), args
	}
	return escapeDollars(img.Entrypoint), escapeDollars(img.Cmd)
}

func escapeDollars(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.ReplaceAll(s, "$", "$$")
	}
	return out
}

// superviseContainers puts the agent's supervisor in front of every container
// of objs' pod templates that runs ref: its command becomes agent.Supervisor()
// followed by the effective entrypoint, its args the effective command; it
// mounts the agent's volume, which an init container running agentRef fills.
// It returns how many containers it wrapped, and why it left others running
// ref alone (a tty, or no command known). Applying it twice changes nothing
// more.
func superviseContainers(objs []*unstructured.Unstructured, ref, agentRef string, img ImageCommand, keepOnExit bool) (wrapped int, skipped []string) {
	for _, o := range objs {
		path, ok := podSpecPath(o)
		if !ok {
			continue
		}
		spec, found, _ := unstructured.NestedMap(o.Object, path...)
		if !found {
			continue
		}
		cs, _ := spec["containers"].([]any)
		n := 0
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			if cm == nil || cm["image"] != ref {
				continue
			}
			name, _ := cm["name"].(string)
			where := o.GetKind() + "/" + o.GetName() + " container " + name
			command, args := stringsAt(cm, "command"), stringsAt(cm, "args")
			if agent.IsSupervised(command) {
				n++
				continue
			}
			if tty, _ := cm["tty"].(bool); tty {
				skipped = append(skipped, where+" has tty: true")
				continue
			}
			ep, cmd := effectiveCommand(command, args, img)
			if len(ep)+len(cmd) == 0 {
				skipped = append(skipped, where+": neither the pod template nor the image gives a command")
				continue
			}
			cm["command"] = anySlice(append(agent.SupervisorFor(keepOnExit), ep...))
			if cmd != nil {
				cm["args"] = anySlice(cmd)
			} else {
				delete(cm, "args")
			}
			cm["volumeMounts"] = withNamed(cm["volumeMounts"], map[string]any{"name": agent.PodVolume, "mountPath": agent.PodDir})
			n++
		}
		if n == 0 {
			continue
		}
		wrapped += n
		spec["volumes"] = withNamed(spec["volumes"], map[string]any{"name": agent.PodVolume, "emptyDir": map[string]any{}})
		inits, _ := spec["initContainers"].([]any)
		if !hasNamed(inits, agent.PodVolume) {
			// First, so that the agent is there whatever the other init
			// containers do.
			spec["initContainers"] = append([]any{initContainer(agentRef)}, inits...)
		}
		_ = unstructured.SetNestedMap(o.Object, spec, path...)
	}
	return wrapped, skipped
}

// initContainer copies the agent from agentRef into the agent's volume, as a
// non-root user with nothing it does not need (restricted pod security).
func initContainer(agentRef string) map[string]any {
	return map[string]any{
		"name":            agent.PodVolume,
		"image":           agentRef,
		"imagePullPolicy": "IfNotPresent",
		"command":         anySlice(agent.PodInstallCommand()),
		"volumeMounts":    []any{map[string]any{"name": agent.PodVolume, "mountPath": agent.PodDir}},
		"securityContext": map[string]any{
			"runAsUser":                int64(agent.ImageUser),
			"runAsGroup":               int64(agent.ImageUser),
			"runAsNonRoot":             true,
			"allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem":   true,
			"capabilities":             map[string]any{"drop": []any{"ALL"}},
			"seccompProfile":           map[string]any{"type": "RuntimeDefault"},
		},
	}
}

// podSpecPath is where a built-in pod-carrying object keeps its pod spec.
func podSpecPath(o *unstructured.Unstructured) ([]string, bool) {
	if !podKind(o) {
		return nil, false
	}
	if o.GetKind() == "Pod" {
		return []string{"spec"}, true
	}
	t := podKinds[o.GetKind()].template
	if t == nil {
		return nil, false
	}
	return append(slices.Clone(t), "spec"), true
}

// stringsAt reads a list of strings at m[key]; nil when it is not set.
func stringsAt(m map[string]any, key string) []string {
	list, ok := m[key].([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func anySlice(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

func hasNamed(list []any, name string) bool {
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["name"] == name {
			return true
		}
	}
	return false
}

// withNamed appends item to list unless an element of its name is there.
func withNamed(list any, item map[string]any) []any {
	l, _ := list.([]any)
	if hasNamed(l, item["name"].(string)) {
		return l
	}
	return append(l, item)
}

// agentImage returns the ref the cluster pulls loop's agent image for arch by:
// imported into the Docker engine once (loop-agent:<agent sha>), then pushed to
// reg, or without one given to the caller to load into kind nodes (load true).
// A push happens once per Deployer.
func (d *Deployer) agentImage(ctx context.Context, b *build.Builder, arch string, reg *Registry, logs io.Writer) (ref string, load bool, err error) {
	if d.docker == nil {
		return "", false, fmt.Errorf("loop's agent image: no Docker engine")
	}
	layer, sum, err := agent.ImageRootfs(arch)
	if err != nil {
		return "", false, err
	}
	local := "loop-agent:" + sum[:16] + "-" + arch
	key := local
	if reg != nil {
		key = reg.Host + "|" + local
	}
	d.mu.Lock()
	done := d.agents[key]
	d.mu.Unlock()
	if done != "" {
		return done, reg == nil, nil
	}
	if _, err := d.docker.ImageInspect(ctx, local); err != nil {
		rc, err := d.docker.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"}, local,
			image.ImportOptions{Platform: "linux/" + arch, Message: "loop's sync agent",
				Changes: []string{"USER " + fmt.Sprint(agent.ImageUser), `ENTRYPOINT ["` + agent.ImageBinary + `"]`}})
		if err != nil {
			return "", false, fmt.Errorf("import loop's agent image %s: %w", local, err)
		}
		err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
		rc.Close()
		if err != nil {
			return "", false, fmt.Errorf("import loop's agent image %s: %w", local, err)
		}
	}
	ref = local
	if reg != nil {
		push, pull, err := reg.Refs(local)
		if err != nil {
			return "", false, err
		}
		if err := b.Push(ctx, local, push, logs); err != nil {
			return "", false, fmt.Errorf("push loop's agent image to the registry of %s: %w", reg.Source, err)
		}
		ref = pull
	}
	d.mu.Lock()
	d.agents[key] = ref
	d.mu.Unlock()
	return ref, reg == nil, nil
}

// imageCommand reads a local image's entrypoint, cmd and architecture.
func (d *Deployer) imageCommand(ctx context.Context, ref string) (ImageCommand, string, error) {
	if d.docker == nil {
		return ImageCommand{}, "", fmt.Errorf("inspect image %s: no Docker engine", ref)
	}
	insp, err := d.docker.ImageInspect(ctx, ref)
	if err != nil {
		return ImageCommand{}, "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	var ic ImageCommand
	if insp.Config != nil {
		ic = ImageCommand{Entrypoint: insp.Config.Entrypoint, Cmd: insp.Config.Cmd}
	}
	return ic, agent.NormalizeArch(insp.Architecture), nil
}

// notSupervised says, for a log line, why restarts in the pods of a resource
// rebuild instead.
func notSupervised(reasons []string) string {
	return strings.Join(reasons, "; ")
}

// supervise wraps the live-updated image's containers in desired when the live
// update restarts (restart_container(), docker_build_with_restart) and records in
// rt.unsupervised why it could not. It returns the agent image's ref when kind
// nodes must be given it ("" otherwise). A custom deploy's objects come from its
// command and are left alone; `loop ci` makes no live updates.
func (rt *deployed) supervise(ctx context.Context, k *Deployer, desired []*unstructured.Unstructured, built render.Images,
	results map[string]build.Result, reg *Registry, logs io.Writer) (load string) {
	rt.unsupervised = ""
	lu := rt.lu
	if lu == nil || !lu.Restart && len(lu.RestartOn) == 0 || rt.custom != nil || rt.h.CI || len(rt.images) == 0 {
		switch {
		case rt.custom != nil:
			rt.unsupervised = "k8s_custom_deploy's objects are its command's"
		case lu != nil && len(rt.images) == 0:
			rt.unsupervised = "loop builds none of the resource's images, so their commands are not known"
		}
		return ""
	}
	name := rt.luImage
	if name == "" {
		name = rt.images[0].Ref
	}
	res, ref := results[name], built[name]
	if res.NotLocal || res.Ref == "" {
		rt.unsupervised = "image " + name + " is not in the Docker engine, so its command is not known"
		return ""
	}
	ic, arch, err := k.imageCommand(ctx, res.Ref)
	if err == nil {
		var agentRef string
		var kindLoad bool
		if agentRef, kindLoad, err = k.agentImage(ctx, rt.k.Builder, arch, reg, logs); err == nil {
			n, skipped := superviseContainers(desired, ref, agentRef, ic, rt.lu != nil && rt.lu.KeepOnExit)
			switch {
			case len(skipped) > 0:
				rt.unsupervised = notSupervised(skipped)
			case n == 0:
				rt.unsupervised = "no pod template runs " + name
			}
			if kindLoad && n > 0 {
				load = agentRef
			}
			return load
		}
	}
	rt.unsupervised = err.Error()
	return ""
}

// readOnlyDests finds a container running ref whose root filesystem is read-only
// and the sync destinations it could not write (on the root, not on a writable
// volume mount): live updates into it would fail at every save, so it rebuilds.
func readOnlyDests(objs []*unstructured.Unstructured, ref string, syncs []model.Sync) (where string, dests []string) {
	for _, o := range objs {
		path, ok := podSpecPath(o)
		if !ok {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, append(path, "containers")...)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			if cm == nil || cm["image"] != ref {
				continue
			}
			if ro, _, _ := unstructured.NestedBool(cm, "securityContext", "readOnlyRootFilesystem"); !ro {
				continue
			}
			mounts, _ := cm["volumeMounts"].([]any)
			for _, s := range syncs {
				if !writableMount(mounts, s.ContainerPath) {
					dests = append(dests, s.ContainerPath)
				}
			}
			if len(dests) > 0 {
				name, _ := cm["name"].(string)
				return o.GetKind() + "/" + o.GetName() + " container " + name, dests
			}
		}
	}
	return "", nil
}

// writableMount says whether p is on one of mounts that is not read-only.
func writableMount(mounts []any, p string) bool {
	for _, m := range mounts {
		mm, _ := m.(map[string]any)
		at, _ := mm["mountPath"].(string)
		ro, _ := mm["readOnly"].(bool)
		at = strings.TrimSuffix(at, "/")
		if !ro && at != "" && (p == at || strings.HasPrefix(p, at+"/")) {
			return true
		}
	}
	return false
}
