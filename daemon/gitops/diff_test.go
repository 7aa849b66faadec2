package gitops

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/gitops/argosync"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// TestLiveBuiltRefs: the live loop-built ref of an image the Tiltfile builds is
// adopted as desired whether it runs under the image's name or pushed to a registry
// under Tilt's escaped name; other images and tags are not.
func TestLiveBuiltRefs(t *testing.T) {
	pod := func(images ...string) *unstructured.Unstructured {
		var cs []any
		for i, img := range images {
			cs = append(cs, map[string]any{"name": fmt.Sprint("c", i), "image": img})
		}
		return &unstructured.Unstructured{Object: map[string]any{"kind": "Pod", "spec": map[string]any{"containers": cs}}}
	}
	adopt := map[string]bool{"docker.io/loop/web": true, "docker.io/library/api": true}
	desired := pod("loop/web", "api", "redis:7")
	for _, c := range []struct {
		live []string
		want render.Images
	}{
		{[]string{"loop/web:loop-1", "api:loop-2", "redis:7"}, render.Images{"docker.io/loop/web": "loop/web:loop-1", "docker.io/library/api": "api:loop-2"}},
		{[]string{"localhost:5001/loop_web:loop-1", "kind-registry:5000/api:loop-2"}, render.Images{"docker.io/loop/web": "localhost:5001/loop_web:loop-1", "docker.io/library/api": "kind-registry:5000/api:loop-2"}},
		{[]string{"loop/web:v1", "localhost:5001/other:loop-3", "redis:loop-4"}, render.Images{}},
	} {
		got := liveBuiltRefs(desired, pod(c.live...), adopt)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("live %v: adopted %v, want %v", c.live, got, c.want)
		}
	}
}

// TestAdoptable: only built images that are not pinned adopt the live ref, by
// normalised name.
func TestAdoptable(t *testing.T) {
	conf := &model.Config{Images: []*model.Image{{Ref: "loop/web"}, {Ref: "api"}}}
	got := adoptable(conf, render.Images{"api": "api:v1"})
	if fmt.Sprint(got) != fmt.Sprint(map[string]bool{"docker.io/loop/web": true}) {
		t.Errorf("adoptable = %v", got)
	}
}

// TestDiffObjects: server bookkeeping and loop's tracking never show as a difference;
// a missing or leftover object diffs against nothing.
func TestDiffObjects(t *testing.T) {
	cm := func(value string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "own", "namespace": "ns"},
			"data":     map[string]any{"greeting": value},
		}}
	}
	live := cm("hello")
	live.SetResourceVersion("42")
	live.SetUID("0123")
	live.SetLabels(map[string]string{argosync.LabelApp: "app"})
	live.SetAnnotations(map[string]string{argosync.AnnTrackingID: "app:/ConfigMap:ns/own"})
	live.Object["status"] = map[string]any{"x": "y"}
	live.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "loop"}}

	key := displayKey(live)
	if key != "ConfigMap/ns/own" {
		t.Errorf("displayKey = %q", key)
	}
	for _, c := range []struct {
		name          string
		live, desired *unstructured.Unstructured
		state         string
		lines         []string
	}{
		{"same", live, cm("hello"), InSync, nil},
		{"changed", live, cm("bye"), Changed, []string{"--- live/" + key, "+++ desired/" + key, "-  greeting: hello", "+  greeting: bye"}},
		{"missing", nil, cm("hello"), Missing, []string{"+  greeting: hello"}},
		{"extra", live, nil, Extra, []string{"-  greeting: hello"}},
	} {
		state, text, err := diffObjects(key, c.live, c.desired)
		if err != nil {
			t.Fatal(err)
		}
		if state != c.state {
			t.Errorf("%s: state %s, want %s", c.name, state, c.state)
		}
		if c.lines == nil && text != "" {
			t.Errorf("%s: in sync yet a diff:\n%s", c.name, text)
		}
		for _, l := range c.lines {
			if !strings.Contains(text, l+"\n") {
				t.Errorf("%s: diff lacks %q:\n%s", c.name, l, text)
			}
		}
		for _, bad := range []string{"resourceVersion", "uid", "managedFields", "status", argosync.LabelApp, argosync.AnnTrackingID} {
			if strings.Contains(text, bad) {
				t.Errorf("%s: diff shows %s:\n%s", c.name, bad, text)
			}
		}
	}
}
