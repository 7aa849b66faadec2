package tiltfile

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// k8sBuiltins are the Kubernetes builtins. helm() and kustomize() render at
// load time; the rest record what a later stage applies.
func (l *loader) k8sBuiltins() starlark.StringDict {
	return builtins(map[string]builtinFn{
		"k8s_yaml":                      l.k8sYAML,
		"filter_yaml":                   l.filterYAML,
		"k8s_resource":                  l.k8sResource,
		"k8s_kind":                      l.k8sKind,
		"k8s_image_json_path":           l.k8sImageJSONPath,
		"workload_to_resource_function": l.workloadToResourceFunction,
		"helm":                          l.helm,
		"kustomize":                     l.kustomize,
		"k8s_custom_deploy":             l.k8sCustomDeploy,
		"allow_k8s_contexts":            l.allowK8sContexts,
		"port_forward":                  l.portForward,
		"link":                          l.link,
		"k8s_context":                   l.k8sContext,
		"k8s_namespace":                 l.k8sNamespace,
		"argocd_app":                    l.argocdApp,
		"argocd_appset":                 l.argocdAppSet,
	})
}

// kubeconfig loads the kubeconfig as kubectl would (client-go's loading rules): the
// files of $KUBECONFIG merged in order, else ~/.kube/config, from the loader's
// environment. No file is an empty config. The files are recorded: switching contexts
// reloads the Tiltfile.
func (l *loader) kubeconfig(b *starlark.Builtin) (*clientcmdapi.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{}
	if kc := l.env[clientcmd.RecommendedConfigPathEnvVar]; kc != "" {
		rules.Precedence = filepath.SplitList(kc)
	} else if home := l.env["HOME"]; home != "" {
		rules.Precedence = []string{filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)}
	}
	for _, f := range rules.Precedence {
		if f != "" {
			l.record(f)
		}
	}
	cfg, err := rules.Load()
	if err != nil {
		return nil, errorf(b, "load kubeconfig: %v", err)
	}
	return cfg, nil
}

// k8sContext is k8s_context(): the current kube context's name, "" without one.
func (l *loader) k8sContext(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	cfg, err := l.kubeconfig(b)
	if err != nil {
		return nil, err
	}
	return starlark.String(cfg.CurrentContext), nil
}

// k8sNamespace is k8s_namespace(): the current context's namespace, "default" when it
// sets none (or there is no context).
func (l *loader) k8sNamespace(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	cfg, err := l.kubeconfig(b)
	if err != nil {
		return nil, err
	}
	if c := cfg.Contexts[cfg.CurrentContext]; c != nil && c.Namespace != "" {
		return starlark.String(c.Namespace), nil
	}
	return starlark.String("default"), nil
}

func (l *loader) k8sYAML(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		yaml            starlark.Value
		allowDuplicates bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "yaml", &yaml, "allow_duplicates?", &allowDuplicates); err != nil {
		return nil, err
	}
	p := pos(thread)
	var items []starlark.Value
	switch x := yaml.(type) {
	case starlark.String, *Blob:
		items = []starlark.Value{x}
	case *starlark.List, starlark.Tuple:
		seq := x.(starlark.Indexable)
		for i := 0; i < seq.Len(); i++ {
			items = append(items, seq.Index(i))
		}
	default:
		return nil, fmt.Errorf("%s: for parameter \"yaml\": got %s, want string, blob or list of them", b.Name(), yaml.Type())
	}
	var paths []string
	for _, it := range items {
		switch x := it.(type) {
		case starlark.String:
			path := l.abs(thread, string(x))
			l.record(path)
			if _, err := os.Stat(path); err != nil {
				return nil, errorf(b, "%s", readErrMsg(err))
			}
			paths = append(paths, path)
		case *Blob:
			// Tilt parses a blob here: an empty or broken one is a load error.
			objs, err := render.Parse([]byte(x.text))
			if err != nil {
				return nil, fmt.Errorf("%s: parse yaml: %w", b.Name(), err)
			}
			if len(objs) == 0 {
				return nil, errorf(b, "empty or invalid YAML: the blob holds no Kubernetes objects")
			}
			src := &model.K8sSource{Kind: model.K8sYAML, YAML: x.text, AllowDuplicates: allowDuplicates, Pos: p}
			if x.rendered != nil {
				// Rendered by helm() or kustomize(): keep its inputs watched.
				src.Helm, src.Kustomize = x.rendered.src.Helm, x.rendered.src.Kustomize
				x.rendered.attached = true
			}
			l.cfg.K8sSources = append(l.cfg.K8sSources, src)
		default:
			return nil, fmt.Errorf("%s: for parameter \"yaml\": got %s in list, want string or blob", b.Name(), it.Type())
		}
	}
	if len(paths) > 0 {
		l.cfg.K8sSources = append(l.cfg.K8sSources, &model.K8sSource{
			Kind: model.K8sYAML, Paths: paths, AllowDuplicates: allowDuplicates, Pos: p})
	}
	return starlark.None, nil
}

// filterYAML is filter_yaml(yaml, labels, name, namespace, kind,
// api_version): it splits the objects of yaml (a blob, a file path, or a list
// of them) into those that match and the rest, as two YAML blobs. As in Tilt,
// name, namespace, kind and api_version are case-insensitive regular
// expressions (an object without a namespace is in "default") and labels must
// all be among the object's metadata labels.
func (l *loader) filterYAML(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		yaml                              starlark.Value
		labels                            strDict
		name, namespace, kind, apiVersion string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "yaml", &yaml, "labels?", &labels,
		"name?", &name, "namespace?", &namespace, "kind?", &kind, "api_version?", &apiVersion); err != nil {
		return nil, err
	}
	var sel [4]*regexp.Regexp
	for i, f := range []struct{ param, expr string }{{"api_version", apiVersion}, {"kind", kind}, {"name", name}, {"namespace", namespace}} {
		re, err := regexp.Compile("(?i)" + f.expr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", b.Name(), f.param, err)
		}
		sel[i] = re
	}
	objs, from, err := l.yamlObjects(thread, b, yaml)
	if err != nil {
		return nil, err
	}
	var match, rest []*unstructured.Unstructured
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ok := sel[0].MatchString(o.GetAPIVersion()) && sel[1].MatchString(o.GetKind()) &&
			sel[2].MatchString(o.GetName()) && sel[3].MatchString(ns)
		have := o.GetLabels()
		for k, v := range labels.m {
			if lv, found := have[k]; !found || lv != v {
				ok = false
			}
		}
		if ok {
			match = append(match, o)
		} else {
			rest = append(rest, o)
		}
	}
	var out starlark.Tuple
	for _, part := range [][]*unstructured.Unstructured{match, rest} {
		text, err := render.Encode(part)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		// The parts of a helm() or kustomize() render keep its inputs.
		out = append(out, &Blob{text: string(text), rendered: from})
	}
	return out, nil
}

// yamlObjects parses the objects of v: a blob of YAML, a path of a YAML file
// (relative to the executing file, and recorded), or a list of them. from is
// the render the first rendered blob came from.
func (l *loader) yamlObjects(thread *starlark.Thread, b *starlark.Builtin, v starlark.Value) (objs []*unstructured.Unstructured, from *rendered, err error) {
	one := func(v starlark.Value) error {
		var data []byte
		switch x := v.(type) {
		case *Blob:
			data = []byte(x.text)
			if from == nil {
				from = x.rendered
			}
		case starlark.String:
			path := l.abs(thread, string(x))
			l.record(path)
			d, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("%s: %s", b.Name(), readErrMsg(err))
			}
			data = d
		default:
			return fmt.Errorf("%s: for parameter \"yaml\": got %s, want blob, string or list of them", b.Name(), v.Type())
		}
		o, err := render.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: parse yaml: %w", b.Name(), err)
		}
		objs = append(objs, o...)
		return nil
	}
	err = oneOrMany(v, one)
	return objs, from, err
}

// portForwardsArg accepts an int, "LOCAL", "LOCAL:CONTAINER",
// "HOST:LOCAL:CONTAINER", a port_forward(), or a list of them.
type portForwardsArg struct{ pfs []model.PortForward }

func (a *portForwardsArg) Unpack(v starlark.Value) error {
	one := func(v starlark.Value) error {
		switch x := v.(type) {
		case starlark.Int:
			n, ok := x.Int64()
			if !ok || n < 1 || n > 65535 {
				return fmt.Errorf("port %s out of range 1-65535", x)
			}
			a.pfs = append(a.pfs, model.PortForward{LocalPort: int(n)})
		case starlark.String:
			pf, err := parsePortForward(string(x))
			if err != nil {
				return err
			}
			a.pfs = append(a.pfs, pf)
		case portForwardValue:
			a.pfs = append(a.pfs, x.pf)
		default:
			return fmt.Errorf("got %s, want int, string or port_forward", v.Type())
		}
		return nil
	}
	return oneOrMany(v, one)
}

func parsePortForward(s string) (model.PortForward, error) {
	parts := strings.Split(s, ":")
	var pf model.PortForward
	port := func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("invalid port %q in port forward %q", s, strings.Join(parts, ":"))
		}
		return n, nil
	}
	var err error
	switch len(parts) {
	case 1:
		pf.LocalPort, err = port(parts[0])
	case 2:
		if pf.LocalPort, err = port(parts[0]); err == nil {
			pf.ContainerPort, err = port(parts[1])
		}
	case 3:
		pf.Host = parts[0]
		if pf.LocalPort, err = port(parts[1]); err == nil {
			pf.ContainerPort, err = port(parts[2])
		}
	default:
		err = fmt.Errorf("invalid port forward %q, want LOCAL, LOCAL:CONTAINER or HOST:LOCAL:CONTAINER", s)
	}
	return pf, err
}

func (l *loader) k8sResource(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		workload, newName, podReadiness, discovery string
		portForwards                               portForwardsArg
		extraSelectors                             starlark.Value = starlark.None
		trigger                                    triggerModeArg
		resourceDeps, objects, labels              stringList
		autoInit                                   optBool
		links                                      linksArg
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"workload?", &workload, "new_name?", &newName, "port_forwards?", &portForwards,
		"extra_pod_selectors?", &extraSelectors, "trigger_mode?", &trigger,
		"resource_deps?", &resourceDeps, "objects?", &objects, "auto_init?", &autoInit,
		"pod_readiness?", &podReadiness, "links?", &links, "labels?", &labels,
		"discovery_strategy?", &discovery,
	); err != nil {
		return nil, err
	}
	if workload == "" && newName == "" {
		return nil, errorf(b, "workload or new_name must be given")
	}
	if workload == "" && len(objects.vals) == 0 {
		return nil, errorf(b, "a resource without a workload needs objects")
	}
	switch podReadiness {
	case "", "wait", "ignore":
	default:
		return nil, errorf(b, "pod_readiness must be 'wait' or 'ignore', got %q", podReadiness)
	}
	switch discovery {
	case "", "default", "selectors-only":
	default:
		return nil, errorf(b, "discovery_strategy must be 'default' or 'selectors-only', got %q", discovery)
	}
	extra, err := podSelectors(extraSelectors)
	if err != nil {
		return nil, fmt.Errorf("%s: for parameter \"extra_pod_selectors\": %w", b.Name(), err)
	}
	l.cfg.K8sResources = append(l.cfg.K8sResources, &model.K8sResource{
		Workload:          workload,
		NewName:           newName,
		Objects:           objects.vals,
		PortForwards:      portForwards.pfs,
		ResourceDeps:      resourceDeps.vals,
		Labels:            labels.vals,
		TriggerMode:       trigger.mode,
		AutoInit:          autoInit.ptr(),
		Links:             links.links,
		ExtraPodSelectors: extra,
		SelectorsOnly:     discovery == "selectors-only",
		Pos:               pos(thread),
	})
	return starlark.None, nil
}

// podSelectors reads extra_pod_selectors: a dict of labels, or a list of them.
func podSelectors(v starlark.Value) ([]map[string]string, error) {
	var items []starlark.Value
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case *starlark.Dict:
		items = []starlark.Value{v}
	case *starlark.List:
		for i := 0; i < v.Len(); i++ {
			items = append(items, v.Index(i))
		}
	case starlark.Tuple:
		items = v
	default:
		return nil, fmt.Errorf("got %s, want dict or list of dicts", v.Type())
	}
	var out []map[string]string
	for _, it := range items {
		var d strDict
		if _, ok := it.(*starlark.Dict); !ok {
			return nil, fmt.Errorf("got a list holding %s, want dicts", it.Type())
		}
		if err := d.Unpack(it); err != nil {
			return nil, err
		}
		if len(d.m) == 0 {
			return nil, fmt.Errorf("an empty selector would select every pod")
		}
		out = append(out, d.m)
	}
	return out, nil
}

// k8sKind is k8s_kind(kind, image_json_path, api_version, image_object,
// pod_readiness). As in Tilt only kind may be given by position.
func (l *loader) k8sKind(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 1 {
		return nil, errorf(b, "got %d positional arguments, want at most 1 (pass image_json_path= and api_version= by name)", len(args))
	}
	var (
		kind, apiVersion, podReadiness string
		jsonPath                       stringList
		imageObject                    starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"kind", &kind, "image_json_path?", &jsonPath, "api_version?", &apiVersion,
		"image_object?", &imageObject, "pod_readiness?", &podReadiness,
	); err != nil {
		return nil, err
	}
	if kind == "" {
		return nil, errorf(b, "kind must not be empty")
	}
	switch podReadiness {
	case "", "wait", "ignore":
	default:
		return nil, errorf(b, "pod_readiness must be 'wait' or 'ignore', got %q", podReadiness)
	}
	obj, isDict := imageObject.(*starlark.Dict)
	if !isDict && imageObject != starlark.None {
		return nil, fmt.Errorf("%s: for parameter \"image_object\": got %s, want dict", b.Name(), imageObject.Type())
	}
	if len(jsonPath.vals) > 0 && isDict {
		return nil, errorf(b, "cannot specify both image_json_path and image_object")
	}
	var io *model.ImageObject
	if isDict {
		var f [3]string
		for i, k := range []string{"json_path", "repo_field", "tag_field"} {
			v, found, _ := obj.Get(starlark.String(k))
			sv, isStr := v.(starlark.String)
			if !found || !isStr || sv == "" {
				return nil, errorf(b, "image_object needs %s (a dict of json_path, repo_field and tag_field, all strings)", k)
			}
			f[i] = string(sv)
		}
		io = &model.ImageObject{JSONPath: f[0], RepoField: f[1], TagField: f[2]}
	}
	l.cfg.K8sKinds = append(l.cfg.K8sKinds, &model.K8sKind{
		Kind: kind, APIVersion: apiVersion, ImageJSONPath: jsonPath.vals, ImageObject: io, PodReadiness: podReadiness})
	return starlark.None, nil
}

// k8sImageJSONPath is k8s_image_json_path(paths, api_version, kind, name,
// namespace): image paths of the objects selected, as Tilt's (the selectors
// are case-insensitive regular expressions; one of kind, name, namespace is
// required).
func (l *loader) k8sImageJSONPath(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		paths                             stringList
		apiVersion, kind, name, namespace string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "paths", &paths, "api_version?", &apiVersion,
		"kind?", &kind, "name?", &name, "namespace?", &namespace); err != nil {
		return nil, err
	}
	if kind == "" && name == "" && namespace == "" {
		return nil, errorf(b, "at least one of kind, name, or namespace must be specified")
	}
	if len(paths.vals) == 0 {
		return nil, errorf(b, "paths must name at least one JSONPath")
	}
	for _, f := range []struct{ param, expr string }{{"api_version", apiVersion}, {"kind", kind}, {"name", name}, {"namespace", namespace}} {
		if _, err := regexp.Compile("(?i)" + f.expr); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", b.Name(), f.param, err)
		}
	}
	l.cfg.K8sKinds = append(l.cfg.K8sKinds, &model.K8sKind{Kind: kind, APIVersion: apiVersion,
		ImageJSONPath: paths.vals, Name: name, Namespace: namespace, ByPath: true})
	return starlark.None, nil
}

// workloadToResourceFunction is workload_to_resource_function(func): func
// takes a K8sObjectID (.name, .kind, .namespace, .group) and returns the
// name of the workload's resource. The loader records it; resource
// assembly calls it.
func (l *loader) workloadToResourceFunction(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn *starlark.Function
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "func", &fn); err != nil {
		return nil, err
	}
	if fn.NumParams() != 1 {
		return nil, errorf(b, "func must take 1 argument; %s takes %d", fn.Name(), fn.NumParams())
	}
	fpos := fn.Position()
	at := model.Position{File: fpos.Filename(), Line: int(fpos.Line), Col: int(fpos.Col)}
	out := l.out
	l.cfg.WorkloadToResource = &model.WorkloadToResource{Pos: at, Name: func(id model.ObjectID) (string, error) {
		th := &starlark.Thread{Name: b.Name(), Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(out, msg) }}
		v, err := starlark.Call(th, fn, starlark.Tuple{objectID(id)}, nil)
		if err != nil {
			return "", fmt.Errorf("%s:%d:%d: %s %s: %w", at.File, at.Line, at.Col, b.Name(), objectID(id), err)
		}
		s, ok := v.(starlark.String)
		if !ok {
			return "", fmt.Errorf("%s:%d:%d: %s: %s returned %s for %s, want string", at.File, at.Line, at.Col, b.Name(), fn.Name(), v.Type(), objectID(id))
		}
		return string(s), nil
	}}
	return starlark.None, nil
}

// objectID is Tilt's K8sObjectID value: .name, .kind, .namespace, .group.
type objectID model.ObjectID

var _ starlark.HasAttrs = objectID{}

func (o objectID) String() string {
	return strings.ToLower(fmt.Sprintf("%s:%s:%s:%s", o.Name, o.Kind, o.Namespace, o.Group))
}
func (o objectID) Type() string         { return "K8sObjectID" }
func (o objectID) Freeze()              {}
func (o objectID) Truth() starlark.Bool { return o != objectID{} }
func (o objectID) Hash() (uint32, error) {
	return starlark.Tuple{starlark.String(o.Name), starlark.String(o.Kind), starlark.String(o.Namespace), starlark.String(o.Group)}.Hash()
}
func (o objectID) AttrNames() []string { return []string{"group", "kind", "name", "namespace"} }
func (o objectID) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(o.Name), nil
	case "kind":
		return starlark.String(o.Kind), nil
	case "namespace":
		return starlark.String(o.Namespace), nil
	case "group":
		return starlark.String(o.Group), nil
	}
	return nil, nil
}

// helm renders a chart at load time, as Tilt's helm() does (in process, with
// the Helm SDK, where Tilt runs `helm template`), and returns the YAML as a
// blob. The chart and values files stay watched: an edit re-runs the Tiltfile.
// As in Tilt, the release is named "chart" unless name= says otherwise,
// templates under a tests/ directory are left out, and namespace= is set on
// every namespaced object that has none.
func (l *loader) helm(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		chart, name, namespace, kubeVersion string
		values, set                         stringList
		skipCRDs                            bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"paths", &chart, "name?", &name, "namespace?", &namespace, "values?", &values,
		"set?", &set, "kube_version?", &kubeVersion, "skip_crds?", &skipCRDs,
	); err != nil {
		return nil, err
	}
	dir := l.abs(thread, chart)
	if err := l.statRecord(b, dir); err != nil {
		return nil, err
	}
	vals := l.absAll(thread, values.vals)
	for _, v := range vals {
		if err := l.statRecord(b, v); err != nil {
			return nil, err
		}
	}
	for _, s := range set.vals {
		if !strings.Contains(s, "=") {
			return nil, errorf(b, "set: %q is not KEY=VALUE", s)
		}
	}
	if name == "" {
		name = "chart" // Tilt's default: stable across loads
	}
	h := &model.HelmArgs{Chart: dir, Name: name, Namespace: namespace, Values: vals, Set: set.vals,
		KubeVersion: kubeVersion, SkipCRDs: skipCRDs}
	text, err := render.HelmTemplate(l.ctx, render.HelmOptions{Chart: dir, ReleaseName: name,
		Namespace: namespace, ValueFiles: vals, Set: set.vals, KubeVersion: kubeVersion, SkipCRDs: skipCRDs})
	if err != nil {
		l.recordTree(dir) // fixing any file of the chart reloads
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	text = dropHelmTests(text)
	if namespace != "" {
		if text, err = withNamespace(text, namespace); err != nil {
			return nil, fmt.Errorf("%s: chart %s: %w", b.Name(), chart, err)
		}
	}
	return l.renderedBlob(text, &model.K8sSource{Kind: model.K8sYAML, Helm: h, Pos: pos(thread)}), nil
}

// helmTestSource is the "# Source:" line of a template under a tests/
// directory, which Tilt's helm() leaves out of its output.
var helmTestSource = regexp.MustCompile(`(?m)^# Source: .*/tests/`)

// dropHelmTests removes the documents rendered from templates under tests/.
func dropHelmTests(text string) string {
	if !helmTestSource.MatchString(text) {
		return text
	}
	docs := strings.Split(text, "---\n")
	kept := docs[:0]
	for _, d := range docs {
		if !helmTestSource.MatchString(d) {
			kept = append(kept, d)
		}
	}
	return strings.Join(kept, "---\n")
}

// withNamespace sets ns on every namespaced object of text that has no
// namespace, as Tilt's helm(namespace=) does (`helm template` does not).
func withNamespace(text, ns string) (string, error) {
	objs, err := render.Parse([]byte(text))
	if err != nil {
		return "", fmt.Errorf("parse rendered yaml: %w", err)
	}
	render.DefaultNamespace(objs, ns)
	out, err := render.Encode(objs)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// kustomize builds a kustomization at load time, as Tilt's kustomize() does
// (in process, where Tilt runs `kustomize build`), and returns the YAML as a
// blob. The kustomization's directories stay watched.
func (l *loader) kustomize(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		dir, bin string
		flags    stringList
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "paths", &dir, "kustomize_bin?", &bin, "flags?", &flags); err != nil {
		return nil, err
	}
	abs := l.abs(thread, dir)
	if err := l.statRecord(b, abs); err != nil {
		return nil, err
	}
	opts, err := render.KustomizeFlags(flags.vals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	p := pos(thread)
	if bin != "" {
		l.warn(p, fmt.Sprintf("kustomize(kustomize_bin=%q) is ignored: loop builds kustomizations in process", bin))
	}
	data, err := render.KustomizeBuild(abs, opts)
	if err != nil {
		l.recordTree(abs)
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return l.renderedBlob(string(data), &model.K8sSource{Kind: model.K8sYAML,
		Kustomize: &model.KustomizeArgs{Dir: abs, Flags: flags.vals}, Pos: p}), nil
}

// rendered is a helm() or kustomize() render: src holds its inputs (a yaml
// source without YAML). A render passed to k8s_yaml lends them to that
// source; finish keeps the others as sources of their own so their inputs
// are watched all the same.
type rendered struct {
	src      *model.K8sSource
	attached bool
}

func (l *loader) renderedBlob(text string, src *model.K8sSource) *Blob {
	r := &rendered{src: src}
	l.rendered = append(l.rendered, r)
	return &Blob{text: text, rendered: r}
}

// recordTree records every file under dir (a chart or kustomization whose
// render failed), so that fixing one re-runs the Tiltfile.
func (l *loader) recordTree(dir string) {
	const limit = 2000
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || n >= limit {
			return filepath.SkipAll
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			l.record(p)
			n++
		}
		return nil
	})
}

// statRecord records path as read and fails if it does not exist.
func (l *loader) statRecord(b *starlark.Builtin, path string) error {
	l.record(path)
	if _, err := os.Stat(path); err != nil {
		return errorf(b, "%s", readErrMsg(err))
	}
	return nil
}

// k8sCustomDeploy declares a resource deployed by commands, as Tilt's:
// apply_cmd deploys and prints the deployed objects as YAML, delete_cmd
// removes them (loop down, or the resource leaving the config).
func (l *loader) k8sCustomDeploy(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, imageSelector, containerSelector, applyDir, deleteDir string
		applyCmd, deleteCmd, applyCmdBat, deleteCmdBat              cmdArg
		deps, imageDeps                                             stringList
		liveUpdate                                                  stepsArg
		applyEnv, deleteEnv                                         strDict
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "apply_cmd", &applyCmd, "delete_cmd", &deleteCmd, "deps?", &deps,
		"image_selector?", &imageSelector, "live_update?", &liveUpdate,
		"apply_dir?", &applyDir, "apply_env?", &applyEnv, "apply_cmd_bat?", &applyCmdBat,
		"delete_dir?", &deleteDir, "delete_env?", &deleteEnv, "delete_cmd_bat?", &deleteCmdBat,
		"container_selector?", &containerSelector, "image_deps?", &imageDeps,
	); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errorf(b, "name must not be empty")
	}
	if applyCmd.cmd.Empty() {
		applyCmd = applyCmdBat
	}
	if deleteCmd.cmd.Empty() {
		deleteCmd = deleteCmdBat
	}
	if applyCmd.cmd.Empty() {
		return nil, errorf(b, "apply_cmd must not be empty")
	}
	if deleteCmd.cmd.Empty() {
		return nil, errorf(b, "delete_cmd must not be empty")
	}
	p := pos(thread)
	lu, err := liveUpdateFromSteps(b, liveUpdate.steps, p)
	if err != nil {
		return nil, err
	}
	if lu != nil {
		// As Tilt: the containers live_update reaches are named by exactly one selector.
		switch {
		case imageSelector == "" && containerSelector == "":
			return nil, errorf(b, "no Live Update selector specified (image_selector or container_selector)")
		case imageSelector != "" && containerSelector != "":
			return nil, errorf(b, "cannot specify more than one Live Update selector (image_selector and container_selector)")
		}
	}
	for _, cd := range l.cfg.CustomDeploys {
		if cd.Name == name {
			return nil, errorf(b, "k8s_custom_deploy named %q already declared at %s:%d", name, cd.Pos.File, cd.Pos.Line)
		}
	}
	dir := func(d string) string {
		if d == "" {
			return filepath.Dir(curFile(thread))
		}
		return l.abs(thread, d)
	}
	l.cfg.CustomDeploys = append(l.cfg.CustomDeploys, &model.CustomDeploy{
		Name: name, ApplyCmd: applyCmd.cmd, ApplyDir: dir(applyDir), ApplyEnv: applyEnv.m,
		DeleteCmd: deleteCmd.cmd, DeleteDir: dir(deleteDir), DeleteEnv: deleteEnv.m,
		Deps: l.absAll(thread, deps.vals), ImageDeps: imageDeps.vals,
		ImageSelector: imageSelector, ContainerSelector: containerSelector, LiveUpdate: lu, Pos: p,
	})
	return starlark.None, nil
}

func (l *loader) allowK8sContexts(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var contexts stringList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "contexts", &contexts); err != nil {
		return nil, err
	}
	l.cfg.Settings.AllowedK8sContexts = append(l.cfg.Settings.AllowedK8sContexts, contexts.vals...)
	return starlark.None, nil
}

func (l *loader) portForward(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		localPort, containerPort int
		name, linkPath, host     string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"local_port", &localPort, "container_port?", &containerPort,
		"name?", &name, "link_path?", &linkPath, "host?", &host,
	); err != nil {
		return nil, err
	}
	if localPort < 1 || localPort > 65535 {
		return nil, errorf(b, "local_port %d out of range 1-65535", localPort)
	}
	if containerPort < 0 || containerPort > 65535 {
		return nil, errorf(b, "container_port %d out of range 1-65535", containerPort)
	}
	return portForwardValue{model.PortForward{LocalPort: localPort, ContainerPort: containerPort,
		Name: name, LinkPath: linkPath, Host: host}}, nil
}

// link is link(url, name): a value with .url and .name. As in Tilt, a URL
// without a scheme gets http.
func (l *loader) link(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var u, name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "url", &u, "name?", &name); err != nil {
		return nil, err
	}
	full, err := linkURL(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return linkValue{model.Link{URL: full, Name: name}}, nil
}

// linkURL validates a link's URL and gives it the scheme http when it has
// none, as Tilt does.
func linkURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("url must not be empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("validate url %q: %w", s, err)
	}
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	return u.String(), nil
}
