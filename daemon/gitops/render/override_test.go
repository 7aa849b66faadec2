package render

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestOverrideContainers(t *testing.T) {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - {name: init, image: example/web:dev, command: [old]}
      containers:
      - name: web
        image: example/web
        args: [keep]
        env:
        - {name: SELF, value: example/web}
        - {name: OTHER, value: example/other}
      - {name: side, image: example/other, command: [side]}
`), &obj); err != nil {
		t.Fatal(err)
	}
	o := &unstructured.Unstructured{Object: obj}
	OverrideContainers([]*unstructured.Unstructured{o},
		map[string]Override{"example/web": {Command: []string{"/app", "-v"}, InEnv: true}},
		Images{"example/web": "registry/web:loop-1"})
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	web, side := cs[0].(map[string]any), cs[1].(map[string]any)
	if !reflect.DeepEqual(web["command"], []any{"/app", "-v"}) || !reflect.DeepEqual(web["args"], []any{"keep"}) {
		t.Errorf("web: command %v args %v, want the entrypoint as command and its args kept", web["command"], web["args"])
	}
	if env := web["env"].([]any); env[0].(map[string]any)["value"] != "registry/web:loop-1" || env[1].(map[string]any)["value"] != "example/other" {
		t.Errorf("env %v: want only the value naming the image replaced (match_in_env_vars)", env)
	}
	if !reflect.DeepEqual(side["command"], []any{"side"}) {
		t.Errorf("a container of another image changed: %v", side["command"])
	}
	ics, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "initContainers")
	if !reflect.DeepEqual(ics[0].(map[string]any)["command"], []any{"/app", "-v"}) {
		t.Errorf("init container of the image (with a tag): command %v", ics[0].(map[string]any)["command"])
	}
}
