package render

import (
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Images maps an image name as the Tiltfile declares it (docker_build's ref, e.g.
// "example/hello") to the ref loop built (e.g. "example/hello:loop-3f2a").
type Images map[string]string

// ImagePath is where a custom kind keeps image refs (k8s_kind image_json_path), as
// field names from the object root; "*" steps into every element of a list.
type ImagePath []string

// ParseImagePath reads a JSONPath like "{.spec.template.image}" or
// "{.spec.containers[*].image}" into an ImagePath.
func ParseImagePath(jp string) ImagePath {
	jp = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(jp), "{"), "}")
	var p ImagePath
	for _, f := range strings.Split(strings.TrimPrefix(jp, "."), ".") {
		name, rest, list := strings.Cut(f, "[")
		if name != "" {
			p = append(p, name)
		}
		if list && strings.HasPrefix(rest, "*]") {
			p = append(p, "*")
		}
	}
	return p
}

// podSpecPaths are where each built-in workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":                   {"spec"},
	"Deployment":            {"spec", "template", "spec"},
	"StatefulSet":           {"spec", "template", "spec"},
	"DaemonSet":             {"spec", "template", "spec"},
	"ReplicaSet":            {"spec", "template", "spec"},
	"ReplicationController": {"spec", "template", "spec"},
	"Job":                   {"spec", "template", "spec"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template", "spec"},
}

// SubstituteImages replaces image refs that name a built image with the built ref, in
// pod templates and at the custom kinds' paths, and forces imagePullPolicy IfNotPresent
// on injected containers (no registry to pull from). It returns the image names used.
func SubstituteImages(objs []*unstructured.Unstructured, images Images, kinds map[string][]ImagePath) map[string]bool {
	used := map[string]bool{}
	if len(images) == 0 {
		return used
	}
	byName := map[string]string{}
	for name, built := range images {
		byName[NormalizedName(name)] = built
		byName[name] = built
	}
	lookup := func(ref string) (string, string, bool) {
		if b, ok := byName[NormalizedName(ref)]; ok {
			return b, NormalizedName(ref), true
		}
		return "", "", false
	}
	for _, o := range objs {
		if path, ok := podSpecPaths[o.GetKind()]; ok {
			spec, found, _ := unstructured.NestedMap(o.Object, path...)
			if found {
				for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
					cs, _ := spec[field].([]any)
					for _, c := range cs {
						cm, ok := c.(map[string]any)
						if !ok {
							continue
						}
						ref, _ := cm["image"].(string)
						if built, name, ok := lookup(ref); ok {
							cm["image"] = built
							cm["imagePullPolicy"] = "IfNotPresent"
							used[name] = true
						}
					}
				}
				_ = unstructured.SetNestedMap(o.Object, spec, path...)
			}
		}
		for _, p := range kinds[o.GetKind()] {
			walkImagePath(o.Object, p, func(ref string) (string, bool) {
				built, name, ok := lookup(ref)
				if ok {
					used[name] = true
				}
				return built, ok
			})
		}
	}
	return used
}

// walkImagePath calls replace for each string at path and stores what it returns.
func walkImagePath(node any, path ImagePath, replace func(string) (string, bool)) any {
	if len(path) == 0 {
		if s, ok := node.(string); ok {
			if r, ok := replace(s); ok {
				return r
			}
		}
		return node
	}
	switch n := node.(type) {
	case map[string]any:
		if v, ok := n[path[0]]; ok {
			n[path[0]] = walkImagePath(v, path[1:], replace)
		}
	case []any:
		if path[0] == "*" {
			for i := range n {
				n[i] = walkImagePath(n[i], path[1:], replace)
			}
		}
	}
	return node
}

// NormalizedName is a ref's repository without tag or digest ("nginx" → "docker.io/library/nginx").
func NormalizedName(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return named.Name()
}

var registryEscape = regexp.MustCompile(`[/:@]`)

// RegistryRepo is the repository an image is pushed to in a registry that is not its
// own (default_registry, a cluster's local registry), as Tilt names it: the image's
// familiar name, lower-case, with '/', ':' and '@' as '_' (loop/web → loop_web,
// gcr.io/team/web → gcr.io_team_web).
func RegistryRepo(named reference.Named) string {
	return strings.ToLower(registryEscape.ReplaceAllString(reference.FamiliarName(named), "_"))
}
