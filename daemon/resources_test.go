package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

// assemble loads the project's Tiltfile and assembles its resources as `loop
// up` would, with the extensions of dir/extensions.
func assemble(t *testing.T, dir string) ([]model.Resource, error) {
	t.Helper()
	return assembleWith(t, dir, tiltfile.Options{})
}

// assembleWith is assemble with more load options.
func assembleWith(t *testing.T, dir string, opts tiltfile.Options) ([]model.Resource, error) {
	t.Helper()
	ctx := context.Background()
	opts.Subcommand, opts.ExtensionsDir = "dump", filepath.Join(dir, "extensions")
	cfg, err := tiltfile.Load(ctx, filepath.Join(dir, "Tiltfile"), opts)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return daemon.Resources(ctx, cfg)
}

// TestResourcesOfEveryKind: a Tiltfile with a local_resource, a Compose project
// and Kubernetes manifests (testdata/assembly) assembles, without Docker or a
// cluster, into the resources `up` runs: the Deployment and the Service that
// selects its pods are one resource; the image built FROM another, with an
// extension's folder as context, syncs from its base's context (the Starlark
// restart_process, --no-builtin-extensions); loop's built-in restart_process
// builds one image from the user's context and restarts its process.
func TestResourcesOfEveryKind(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "assembly"))
	if err != nil {
		t.Fatal(err)
	}
	got := describeResources(t, dir, tiltfile.Options{NoBuiltinExtensions: true})
	want := []string{
		"gen local trigger=auto deps=[] labels=[tools] cmd=sh -c echo generated > api/src/gen.txt",
		"cache compose trigger=auto deps=[] labels=[] service=assembly/cache",
		"api compose trigger=auto deps=[cache gen] labels=[] service=assembly/api image=example/api@api sync=api/src:/app/src link=http://localhost:8000 link=http://localhost:8000/",
		"web k8s trigger=manual deps=[gen] labels=[frontend] Deployment/web Service/web ConfigMap/web-config image=example/web@web sync=web/static:/www link=http://localhost:8080/",
		"worker k8s trigger=auto deps=[] labels=[] Deployment/worker image=example/worker@extensions/restart_process<example/worker-base sync=worker/src:/app entrypoint=/app/main.sh",
		"uncategorized k8s trigger=auto deps=[] labels=[] Secret/token",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// loop's built-in restart_process: one image, from the user's context,
	// whose process the agent restarts after the sync.
	got = describeResources(t, dir, tiltfile.Options{})
	want[4] = "worker k8s trigger=auto deps=[] labels=[] Deployment/worker image=example/worker@worker sync=worker/src:/app restart entrypoint=/app/main.sh"
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resources with the built-in restart_process:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// describeResources assembles dir's resources and describes each on a line.
func describeResources(t *testing.T, dir string, opts tiltfile.Options) []string {
	t.Helper()
	rs, err := assembleWith(t, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string { return strings.TrimPrefix(p, dir+"/") }
	var got []string
	for _, r := range rs {
		line := fmt.Sprintf("%s %s trigger=%s deps=%v labels=%v", r.Name, r.Type, r.TriggerMode, r.ResourceDeps, r.Labels)
		for _, o := range r.Objects {
			line += " " + o.Kind + "/" + o.Name
		}
		if r.Compose != nil {
			line += " service=" + r.Compose.Project + "/" + r.Compose.Service
		}
		if r.Local != nil {
			line += " cmd=" + strings.Join(r.Local.Cmd, " ")
		}
		for _, img := range r.Images {
			line += " image=" + img.Ref + "@" + rel(img.Context)
			if len(img.BuiltFrom) > 0 {
				line += "<" + strings.Join(img.BuiltFrom, ",")
			}
			if lu := img.LiveUpdate; lu != nil {
				for _, s := range lu.Syncs {
					line += " sync=" + rel(s.LocalPath) + ":" + s.ContainerPath
				}
				if lu.Restart {
					line += " restart"
				}
			}
			if len(img.Entrypoint) > 0 {
				line += " entrypoint=" + strings.Join(img.Entrypoint, " ")
			}
		}
		for _, l := range r.Links {
			line += " link=" + l.URL
		}
		got = append(got, line)
	}
	return got
}

// TestResourcesCheckLiveUpdateAsTilt: where sync sources point is checked at
// assembly, for images a resource deploys, against the paths the image and the
// images it is built from watch; the error names the sync() call.
func TestResourcesCheckLiveUpdateAsTilt(t *testing.T) {
	const k8s = `apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: example/app}]}
`
	files := map[string]string{
		"src/main.sh": "echo\n", "ext/Dockerfile": "FROM scratch\n", "other/Dockerfile": "FROM scratch\n",
		"k8s.yaml": k8s, "compose.yaml": "services:\n  app:\n    image: example/app\n",
	}
	for _, tc := range []struct {
		name, tiltfile, want string
	}{{
		name: "a sync outside the context of an image nothing deploys loads",
		tiltfile: "docker_build('example/app', 'ext')\n" +
			"docker_build('example/idle', 'other', live_update=[sync('src', '/app')], only=['../src'])\n" +
			"k8s_yaml('k8s.yaml')\n",
	}, {
		name: "a sync outside the paths a deployed image watches fails with file:line:col",
		tiltfile: "docker_build('example/app', 'ext', live_update=[\n" +
			"    sync('src', '/app'),\n" +
			"])\nk8s_yaml('k8s.yaml')\n",
		want: `Tiltfile:2:9: check the live_update of example/app: sync source \S+/src is not under a path the image or an image it is built from watches \(\S+/ext\)`,
	}, {
		name: "the same for a Compose service",
		tiltfile: "docker_build('example/app', 'ext',\n" +
			"    live_update=[sync('src', '/app')])\ndocker_compose('compose.yaml')\n",
		want: `Tiltfile:2:22: check the live_update of example/app: sync source \S+/src is not under`,
	}, {
		name: "a sync under the context of the image it is built from passes",
		tiltfile: "docker_build('example/base', 'src')\n" +
			"docker_build('example/app', 'ext', dockerfile_contents='FROM example/base\\n', live_update=[sync('src', '/app')])\n" +
			"k8s_yaml('k8s.yaml')\n",
	}, {
		name: "an image FROM something else does not watch the base's context",
		tiltfile: "docker_build('example/base', 'src')\n" +
			"docker_build('example/app', 'ext', dockerfile_contents='FROM busybox\\n', live_update=[sync('src', '/app')])\n" +
			"k8s_yaml('k8s.yaml')\n",
		want: `Tiltfile:2:91: check the live_update of example/app: sync source`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := map[string]string{"Tiltfile": tc.tiltfile}
			for k, v := range files {
				fs[k] = v
			}
			writeFiles(t, dir, fs)
			_, err := assemble(t, dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want != "" && (err == nil || !regexp.MustCompile(regexp.QuoteMeta(filepath.Join(dir, ""))+"/"+tc.want).MatchString(err.Error())):
				t.Fatalf("error %v, want %s", err, tc.want)
			}
		})
	}
}

// TestResourcesOfImagesBuiltFromEachOther: a custom_build run by a Compose
// service (dc_resource image=) and built on a docker_build (image_deps), and a
// docker_build FROM that custom image in a Deployment (testdata/builds): each
// resource builds its image with the ones it is built from, and may sync
// from their paths.
func TestResourcesOfImagesBuiltFromEachOther(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "builds"))
	if err != nil {
		t.Fatal(err)
	}
	got := describeResources(t, dir, tiltfile.Options{})
	want := []string{
		"gen compose trigger=auto deps=[] labels=[] service=builds/gen image=example/gen@<example/base sync=gen/src:/src sync=base/shared:/shared entrypoint=sh -c ./gen --serve",
		"app k8s trigger=auto deps=[] labels=[] Deployment/app image=example/app@app<example/gen sync=gen/src:/gen-src",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
