package render

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// DirectoryOptions are Argo CD's spec.source.directory settings.
type DirectoryOptions struct {
	Recurse bool
	// Include and Exclude are glob patterns matched against the path relative to the
	// directory; brace lists like "{a.yaml,b.yaml}" are accepted as Argo CD does.
	Include string
	Exclude string
}

// Directory renders a directory of .yaml/.yml/.json manifests like Argo CD's repo server:
// files in lexical order, subdirectories only with Recurse, dot-files skipped.
func Directory(dir string, opts DirectoryOptions) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (!opts.Recurse || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if opts.Include != "" && !globMatch(opts.Include, rel) {
			return nil
		}
		if opts.Exclude != "" && globMatch(opts.Exclude, rel) {
			return nil
		}
		objs, err := parseFile(path)
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

// globMatch matches a path against a glob or a "{a,b}" list of globs, trying both the
// relative path and its base name (Argo CD matches "*.yaml" against nested files too).
func globMatch(pattern, rel string) bool {
	pats := []string{pattern}
	if strings.HasPrefix(pattern, "{") && strings.HasSuffix(pattern, "}") {
		pats = strings.Split(pattern[1:len(pattern)-1], ",")
	}
	for _, p := range pats {
		p = strings.TrimSpace(p)
		if ok, _ := filepath.Match(p, rel); ok {
			return true
		}
		if !strings.Contains(p, "/") {
			if ok, _ := filepath.Match(p, filepath.Base(rel)); ok {
				return true
			}
		}
	}
	return false
}
