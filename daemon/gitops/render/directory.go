package render

import (
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/gobwas/glob"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// DirectoryOptions are Argo CD's spec.source.directory settings.
type DirectoryOptions struct {
	Recurse bool
	// Include and Exclude are glob patterns matched against the path relative to the
	// directory, with Argo CD's matcher (github.com/gobwas/glob, no separators: "*"
	// crosses "/", so "*.yaml" matches nested files too; "{a.yaml,b/*.yaml}" lists).
	Include string
	Exclude string
}

// manifestFile is what Argo CD's repo server reads from a directory (.jsonnet is not
// evaluated here).
var manifestFile = regexp.MustCompile(`^.*\.(yaml|yml|json)$`)

// Directory renders a directory of .yaml/.yml/.json manifests like Argo CD's repo server:
// files in lexical order, subdirectories only with Recurse, YAML files that are not
// Kubernetes manifests (a values file, .argocd-source.yaml) skipped.
func Directory(dir string, opts DirectoryOptions) ([]*unstructured.Unstructured, error) {
	include, err := compileGlob("include", opts.Include)
	if err != nil {
		return nil, fmt.Errorf("render directory %s: %w", dir, err)
	}
	exclude, err := compileGlob("exclude", opts.Exclude)
	if err != nil {
		return nil, fmt.Errorf("render directory %s: %w", dir, err)
	}
	var out []*unstructured.Unstructured
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// .git never holds manifests; skipping it only saves the walk.
			if path != dir && (!opts.Recurse || d.Name() == ".git") {
				return filepath.SkipDir
			}
			return nil
		}
		if !manifestFile.MatchString(d.Name()) || !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if exclude != nil && exclude.Match(rel) {
			return nil
		}
		if include != nil && !include.Match(rel) {
			return nil
		}
		objs, err := parseManifestFile(path)
		if err != nil {
			return err
		}
		out = append(out, objs...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("render directory %s: %w", dir, err)
	}
	return out, nil
}

func compileGlob(what, pattern string) (glob.Glob, error) {
	if pattern == "" {
		return nil, nil
	}
	g, err := glob.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s pattern %q: %w", what, pattern, err)
	}
	return g, nil
}

// parseManifestFile reads one file of a directory source. Like the repo server, a YAML
// file that fails to parse before yielding any object is skipped unless it looks like a
// manifest (it has apiVersion:, kind: and metadata:), so values files can sit beside
// the manifests.
func parseManifestFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := parseStream(data)
	if err == nil {
		return objs, nil
	}
	if len(objs) == 0 && !strings.HasSuffix(path, ".json") && !looksLikeManifest(data) {
		return nil, nil
	}
	return nil, fmt.Errorf("parse %s: %w", path, err)
}

func looksLikeManifest(data []byte) bool {
	return bytes.Contains(data, []byte("apiVersion:")) && bytes.Contains(data, []byte("kind:")) &&
		bytes.Contains(data, []byte("metadata:"))
}
