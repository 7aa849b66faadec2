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
		eachContainer(o, func(cm map[string]any) {
			ref, _ := cm["image"].(string)
			if built, name, ok := lookup(ref); ok {
				cm["image"] = built
				cm["imagePullPolicy"] = "IfNotPresent"
				used[name] = true
			}
		})
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

// eachContainer calls fn with each container of o's pod template (init,
// regular and ephemeral containers), which fn may change in place.
func eachContainer(o *unstructured.Unstructured, fn func(c map[string]any)) {
	path, ok := podSpecPaths[o.GetKind()]
	if !ok {
		return
	}
	spec, found, _ := unstructured.NestedMap(o.Object, path...)
	if !found {
		return
	}
	for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
		cs, _ := spec[field].([]any)
		for _, c := range cs {
			if cm, ok := c.(map[string]any); ok {
				fn(cm)
			}
		}
	}
	_ = unstructured.SetNestedMap(o.Object, spec, path...)
}

// Override is what a built image's entrypoint= and container_args= set in
// the containers that run it.
type Override struct {
	// Command replaces the container's command when non-nil.
	Command []string
	// Args replace its args when non-nil.
	Args []string
	// InEnv also replaces env values that name the image with the built
	// ref (match_in_env_vars).
	InEnv bool
}

// OverrideContainers applies overrides (by image name as the config
// writes it) to the pod-template containers that run those images, as Tilt
// does: command from entrypoint=, args from container_args=. With InEnv, an
// env value naming the image gets its built ref from images. Call it before
// SubstituteImages (it matches the images as written).
func OverrideContainers(objs []*unstructured.Unstructured, overrides map[string]Override, images Images) {
	if len(overrides) == 0 {
		return
	}
	byName := map[string]Override{}
	for name, o := range overrides {
		byName[NormalizedName(name)] = o
	}
	for _, o := range objs {
		eachContainer(o, func(cm map[string]any) {
			ref, _ := cm["image"].(string)
			ov, ok := byName[NormalizedName(ref)]
			if !ok {
				return
			}
			if ov.Command != nil {
				cm["command"] = toAny(ov.Command)
			}
			if ov.Args != nil {
				cm["args"] = toAny(ov.Args)
			}
		})
		for name, ov := range overrides {
			if built, ok := images[name]; ok && ov.InEnv {
				eachContainer(o, func(cm map[string]any) {
					env, _ := cm["env"].([]any)
					for _, e := range env {
						em, _ := e.(map[string]any)
						if v, ok := em["value"].(string); ok && v != "" && NormalizedName(v) == NormalizedName(name) {
							em["value"] = built
						}
					}
				})
			}
		}
	}
}

func toAny(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
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
