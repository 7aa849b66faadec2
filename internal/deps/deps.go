//go:build loopdeps

// Package deps pins modules that packages under construction will import.
package deps

import (
	_ "github.com/compose-spec/compose-go/v2/cli"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/moby/patternmatcher"
	_ "github.com/spf13/cobra"
	_ "go.starlark.net/starlark"
	_ "go.yaml.in/yaml/v3"
	_ "sigs.k8s.io/yaml"
)
