package devcontainer

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary devcontainer.json (JSON with comments and
// trailing commas) to the parser. It must never panic, and a rejected file
// must say where: a positioned *Error, or an error naming the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"image": "busybox", "forwardPorts": [3000, "db:5432"]}`))
	f.Add([]byte(`// c
{
  "build": {"dockerfile": "Dockerfile", "context": "..", "args": {"A": "${localEnv:HOME}"}},
  "mounts": ["source=${localWorkspaceFolder},target=/w,type=bind"],
  "postCreateCommand": ["echo", "hi"], /* block */
  "workspaceFolder": "/workspaces/${localWorkspaceFolderBasename}",
}`))
	f.Add([]byte(`{"dockerComposeFile": ["a.yml"], "service": "app", "runServices": ["app"]}`))
	f.Add([]byte(`{"image": 1}`))
	f.Add([]byte(`{"postStartCommand": {"a": "x", "b": ["y"]}, "containerEnv": {"X": "${containerEnv:PATH}"}}`))
	f.Add([]byte(`{"features": {"ghcr.io/devcontainers/features/go:1": {"version": "1.22"}}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		lookup := func(k string) (string, bool) { return "v-" + k, k != "UNSET" }
		cfg, err := parse("/ws/.devcontainer/devcontainer.json", src, "/ws", lookup)
		if err == nil {
			if cfg == nil {
				t.Fatal("parse returned neither a config nor an error")
			}
			return
		}
		var pe *Error
		if !errors.As(err, &pe) && err.Error() == "" {
			t.Fatalf("parse error without a message for %q", src)
		}
	})
}
