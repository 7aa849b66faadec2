package kube

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/model"
)

// TestEffectiveCommand: the kubelet's rules (command replaces the entrypoint and
// drops the image's cmd; args replace the cmd), with the image's parts written
// as a pod template must say them ($ as $$).
func TestEffectiveCommand(t *testing.T) {
	img := ImageCommand{Entrypoint: []string{"/ep", "$HOME"}, Cmd: []string{"serve", "$(X)"}}
	for _, c := range []struct {
		command, args []string
		want          string
	}{
		{nil, nil, "[/ep $$HOME] [serve $$(X)]"},
		{[]string{"run"}, nil, "[run] []"},
		{nil, []string{"$(Y)"}, "[/ep $$HOME] [$(Y)]"},
		{[]string{"run"}, []string{"a"}, "[run] [a]"},
	} {
		ep, cmd := effectiveCommand(c.command, c.args, img)
		if got := fmt.Sprint(ep, cmd); got != c.want {
			t.Errorf("command %q args %q: %s, want %s", c.command, c.args, got, c.want)
		}
	}
	if ep, cmd := effectiveCommand(nil, nil, ImageCommand{}); ep != nil || cmd != nil {
		t.Errorf("nothing anywhere: %q %q, want nothing", ep, cmd)
	}
}

const supervisedYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - {name: migrate, image: tools}
      containers:
      - {name: app, image: reg/web:loop-1, volumeMounts: [{name: data, mountPath: /data}]}
      - {name: side, image: sidecar, command: [side]}
      - {name: term, image: reg/web:loop-1, tty: true}
      volumes:
      - {name: data, emptyDir: {}}
`

// TestSuperviseContainers: the containers running the image get the supervisor in
// front of their effective command and the agent's volume; the pod gets the volume
// and, first, the init container that fills it; others are left alone, a tty is
// skipped with a reason, and doing it again changes nothing.
func TestSuperviseContainers(t *testing.T) {
	o := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(supervisedYAML), &o.Object); err != nil {
		t.Fatal(err)
	}
	objs := []*unstructured.Unstructured{o}
	n, skipped := superviseContainers(objs, "reg/web:loop-1", "reg/loop-agent:x", ImageCommand{Cmd: []string{"/app/web", "-v"}}, false)
	if n != 1 || len(skipped) != 1 || skipped[0] != "Deployment/web container term has tty: true" {
		t.Fatalf("wrapped %d, skipped %q; want 1 and the tty", n, skipped)
	}
	first := fmt.Sprint(o.Object)
	if n, _ := superviseContainers(objs, "reg/web:loop-1", "reg/loop-agent:x", ImageCommand{Cmd: []string{"/app/web", "-v"}}, false); n != 1 || fmt.Sprint(o.Object) != first {
		t.Fatalf("a second time: wrapped %d, object changed: %v", n, fmt.Sprint(o.Object) != first)
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec
	app := spec.Containers[0]
	if got := fmt.Sprint(app.Command, app.Args); got != "[/.loop/agent supervise --] [/app/web -v]" {
		t.Errorf("app: %s, want the supervisor then the image's cmd", got)
	}
	if m := app.VolumeMounts; len(m) != 2 || m[0].Name != "data" || m[1].Name != "loop-agent" || m[1].MountPath != "/.loop" {
		t.Errorf("app mounts: %+v, want data and the agent's at /.loop", m)
	}
	if side := spec.Containers[1]; fmt.Sprint(side.Command, side.Args, side.VolumeMounts) != "[side] [] []" {
		t.Errorf("the sidecar changed: %+v", side)
	}
	if len(spec.InitContainers) != 2 || spec.InitContainers[1].Name != "migrate" {
		t.Fatalf("init containers %+v, want loop's first, then migrate", spec.InitContainers)
	}
	ic := spec.InitContainers[0]
	if got := fmt.Sprintln(ic.Name, ic.Image, ic.Command, *ic.SecurityContext.RunAsUser, *ic.SecurityContext.ReadOnlyRootFilesystem); got != "loop-agent reg/loop-agent:x [/loop-agent install /.loop/agent] 65534 true\n" {
		t.Errorf("init container: %s", got)
	}
	if len(spec.Volumes) != 2 || spec.Volumes[1].Name != "loop-agent" || spec.Volumes[1].EmptyDir == nil {
		t.Errorf("volumes %+v, want data and the agent's emptyDir", spec.Volumes)
	}
}

// exit_policy='continue': the supervisor keeps the container when the process exits.
func TestSuperviseContainersKeepOnExit(t *testing.T) {
	o := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(supervisedYAML), &o.Object); err != nil {
		t.Fatal(err)
	}
	superviseContainers([]*unstructured.Unstructured{o}, "reg/web:loop-1", "a", ImageCommand{Cmd: []string{"/app/web"}}, true)
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Spec.Template.Spec.Containers[0].Command); got != "[/.loop/agent supervise -keep-on-exit --]" {
		t.Errorf("command %s, want the supervisor keeping the container", got)
	}
}

// TestSuperviseContainersNoCommand: a container with no command anywhere is left
// alone, with the reason.
func TestSuperviseContainersNoCommand(t *testing.T) {
	o := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(supervisedYAML), &o.Object); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(o.Object)
	n, skipped := superviseContainers([]*unstructured.Unstructured{o}, "sidecar-not", "a", ImageCommand{}, false)
	if n != 0 || len(skipped) != 0 || fmt.Sprint(o.Object) != before {
		t.Fatalf("another image: wrapped %d, skipped %q", n, skipped)
	}
	o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"] = []any{map[string]any{"name": "app", "image": "reg/web:loop-1"}}
	n, skipped = superviseContainers([]*unstructured.Unstructured{o}, "reg/web:loop-1", "a", ImageCommand{}, false)
	if n != 0 || len(skipped) != 1 || skipped[0] != "Deployment/web container app: neither the pod template nor the image gives a command" {
		t.Fatalf("no command: wrapped %d, skipped %q", n, skipped)
	}
}

// TestReadOnlyDests: syncs into a read-only root are found, those onto a writable
// volume are not, and a writable root has none.
func TestReadOnlyDests(t *testing.T) {
	o := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: web
    securityContext: {readOnlyRootFilesystem: true}
    volumeMounts: [{name: a, mountPath: /data/}, {name: b, mountPath: /conf, readOnly: true}]
`), &o.Object); err != nil {
		t.Fatal(err)
	}
	syncs := []model.Sync{{ContainerPath: "/data/x"}, {ContainerPath: "/data"}, {ContainerPath: "/conf/y"}, {ContainerPath: "/app"}, {ContainerPath: "/database"}}
	where, dests := readOnlyDests([]*unstructured.Unstructured{o}, "web", syncs)
	if got := fmt.Sprint(where, dests); got != "Pod/p container app[/conf/y /app /database]" {
		t.Errorf("got %s", got)
	}
	if _, dests := readOnlyDests([]*unstructured.Unstructured{o}, "other", syncs); dests != nil {
		t.Errorf("another image: %q", dests)
	}
	_ = unstructured.SetNestedField(o.Object, []any{map[string]any{"name": "app", "image": "web"}}, "spec", "containers")
	if _, dests := readOnlyDests([]*unstructured.Unstructured{o}, "web", syncs); dests != nil {
		t.Errorf("a writable root: %q", dests)
	}
}
