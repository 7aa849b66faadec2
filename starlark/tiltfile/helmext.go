package tiltfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.starlark.net/starlark"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// loop's own versions of the extensions ext://helm_resource (helm_resource,
// helm_repo) and ext://helm_remote (helm_remote, helm_remote_yaml): the same
// names and parameters, with the chart rendered in process by the Helm SDK
// and applied by loop's sync, where the Starlark ones run the helm CLI (and
// a Python helper) and download charts. Options.NoBuiltinExtensions loads
// the Starlark ones instead.

// helmExtension is the built-in module of ext://module, or nil.
func (l *loader) helmExtension(module string) starlark.StringDict {
	switch module {
	case "helm_resource":
		return builtins(map[string]builtinFn{"helm_resource": l.helmResource, "helm_repo": l.helmRepoBuiltin})
	case "helm_remote":
		return builtins(map[string]builtinFn{"helm_remote": l.helmRemote, "helm_remote_yaml": l.helmRemoteYAML})
	}
	return nil
}

// helmResource is helm_resource(): the chart's objects are one resource of
// that name, whatever workloads they hold, rendered at load and deployed (and
// removed by loop down) like any Kubernetes resource. image_deps are built
// and injected through image_keys, as the extension does.
func (l *loader) helmResource(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, chart, releaseName, imageSelector, containerSelector, podReadiness string
		namespace                                                                starlark.Value = starlark.None
		deps, imageDeps, flags, uninstallFlags, labels, resourceDeps             stringList
		imageKeys, portForwards, links                                           starlark.Value = starlark.None, starlark.None, starlark.None
		liveUpdate                                                               stepsArg
		autoInit                                                                 = true
		updateDeps, buildDeps                                                    bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "chart", &chart, "deps?", &deps, "release_name?", &releaseName,
		"namespace?", &namespace, "image_deps?", &imageDeps, "image_keys?", &imageKeys,
		"flags?", &flags, "uninstall_flags?", &uninstallFlags, "image_selector?", &imageSelector,
		"container_selector?", &containerSelector, "live_update?", &liveUpdate,
		"resource_deps?", &resourceDeps, "labels?", &labels, "port_forwards?", &portForwards,
		"auto_init?", &autoInit, "pod_readiness?", &podReadiness,
		"update_dependencies?", &updateDeps, "build_dependencies?", &buildDeps, "links?", &links,
	); err != nil {
		return nil, err
	}
	p := pos(thread)
	if releaseName == "" {
		releaseName = name
	}
	ns := ""
	if s, ok := namespace.(starlark.String); ok {
		ns = string(s)
	}
	keys, err := imageKeyList(imageKeys)
	if err != nil {
		return nil, fmt.Errorf("%s: image_keys: %w", b.Name(), err)
	}
	if len(keys) != len(imageDeps.vals) {
		return nil, errorf(b, "image_deps and image_keys must have the same length, so that we know how to inject images into the helm chart")
	}
	seen := map[string]bool{}
	for _, d := range imageDeps.vals {
		if seen[d] {
			return nil, errorf(b, "image_deps should be unique. Found duplicate: %s", d)
		}
		seen[d] = true
	}
	hf, err := parseHelmFlags(flags.vals, func(f string) string { return l.abs(thread, f) })
	if err != nil {
		return nil, fmt.Errorf("%s(%q): flags: %w", b.Name(), name, err)
	}
	for _, f := range hf.ignored {
		l.warn(p, fmt.Sprintf("%s(%q): flag %s is ignored (loop renders the chart in process and waits for health itself)", b.Name(), name, f))
	}
	if hf.namespace != "" {
		ns = hf.namespace
	}
	keepHistory := false
	for _, f := range uninstallFlags.vals {
		switch f {
		case "--keep-history":
			keepHistory = true
		case "--ignore-not-found":
			// loop down never fails on an object that is gone already.
		default:
			l.warn(p, fmt.Sprintf("%s(%q): uninstall flag %s is ignored: loop down deletes the objects loop applied and runs no hooks (--keep-history and --ignore-not-found are honoured)", b.Name(), name, f))
		}
	}
	lu, err := liveUpdateFromSteps(b, liveUpdate.steps, p)
	if err != nil {
		return nil, err
	}
	if lu != nil && imageSelector != "" && containerSelector != "" {
		return nil, errorf(b, "cannot specify more than one Live Update selector (image_selector and container_selector)")
	}
	if lu != nil && imageSelector == "" && containerSelector == "" {
		// As the extension: the live_update's containers are those running
		// an image of image_deps (give that image's docker_build the
		// live_update), or the ones a selector names.
		return nil, errorf(b, "live_update needs image_selector or container_selector (or put it on the docker_build of an image in image_deps)")
	}
	dir, err := l.localChart(thread, b, name, chart, hf.version)
	if err != nil {
		return nil, err
	}
	// Each image is set to its ref as declared; the deploy puts the built ref
	// in its place wherever a container runs it, as for any manifest.
	set := hf.setString
	for i, ref := range imageDeps.vals {
		for _, k := range keys[i] {
			set = append(set, imageValues(k, ref)...)
		}
	}
	h := &model.HelmArgs{Chart: dir, Name: releaseName, Namespace: ns, Values: hf.values, Set: hf.set}
	text, err := l.helmRender(b, h, set)
	if err != nil {
		return nil, err
	}
	if hf.createNamespace && ns != "" {
		text = namespaceYAML(ns) + "---\n" + text
	}
	rel := &model.HelmRelease{Name: releaseName, Namespace: ns, Chart: dir, KeepHistory: keepHistory,
		LiveUpdate: lu, ImageSelector: imageSelector, ContainerSelector: containerSelector}
	for _, d := range deps.vals {
		// A change re-runs the Tiltfile, so the chart renders again, and
		// re-applies the release even when the render comes out the same, as
		// the extension's helm upgrade does.
		rel.Deps = append(rel.Deps, l.abs(thread, d))
		l.record(l.abs(thread, d))
	}
	l.cfg.K8sSources = append(l.cfg.K8sSources, &model.K8sSource{Kind: model.K8sYAML, YAML: text, Helm: h, Resource: name, Release: rel, Pos: p})
	// The rest is k8s_resource's, as the extension passes it on.
	kr := []starlark.Tuple{{starlark.String("workload"), starlark.String(name)}}
	add := func(k string, v starlark.Value) { kr = append(kr, starlark.Tuple{starlark.String(k), v}) }
	if len(resourceDeps.vals) > 0 {
		add("resource_deps", toList(resourceDeps.vals))
	}
	if len(labels.vals) > 0 {
		add("labels", toList(labels.vals))
	}
	if portForwards != starlark.None {
		add("port_forwards", portForwards)
	}
	if !autoInit {
		add("auto_init", starlark.False)
	}
	if podReadiness != "" {
		add("pod_readiness", starlark.String(podReadiness))
	}
	if links != starlark.None {
		add("links", links)
	}
	if _, err := l.k8sResource(thread, starlark.NewBuiltin("k8s_resource", nil), nil, kr); err != nil {
		return nil, fmt.Errorf("%s(%q): %w", b.Name(), name, err)
	}
	return starlark.None, nil
}

func toList(vals []string) *starlark.List {
	l := make([]starlark.Value, len(vals))
	for i, v := range vals {
		l[i] = starlark.String(v)
	}
	return starlark.NewList(l)
}

// helmRender renders a chart as helm() does (tests left out, namespace= set
// on objects that have none) with set added as --set-string values.
func (l *loader) helmRender(b *starlark.Builtin, h *model.HelmArgs, setString []string) (string, error) {
	for _, v := range h.Values {
		if err := l.statRecord(b, v); err != nil {
			return "", err
		}
	}
	l.recordTree(h.Chart) // an edit of the chart renders it again
	text, err := render.HelmTemplate(l.ctx, render.HelmOptions{Chart: h.Chart, ReleaseName: h.Name,
		Namespace: h.Namespace, ValueFiles: h.Values, Set: h.Set, SetString: setString, SkipCRDs: h.SkipCRDs})
	if err != nil {
		return "", fmt.Errorf("%s: %w", b.Name(), err)
	}
	text = dropHelmTests(text)
	if h.Namespace != "" {
		if text, err = withNamespace(text, h.Namespace); err != nil {
			return "", fmt.Errorf("%s: chart %s: %w", b.Name(), h.Chart, err)
		}
	}
	return text, nil
}

// localChart resolves helm_resource's chart to a chart on disk: a local
// chart directory or packaged chart, or a chart of a helm_repo (REPO/NAME)
// or an OCI registry (oci://HOST/PATH/NAME) in the chart cache, where `loop
// fetch` pulls it (a load uses no network: a chart not there yet is a
// *Missing). version is helm's --version ("" is the latest).
func (l *loader) localChart(thread *starlark.Thread, b *starlark.Builtin, name, chart, version string) (string, error) {
	if oci, ok := strings.CutPrefix(chart, "oci://"); ok {
		i := strings.LastIndex(oci, "/")
		if i <= 0 {
			return "", fmt.Errorf("%s(%q): chart %q: want oci://HOST/PATH/NAME", b.Name(), name, chart)
		}
		dir, err := l.cachedChart(oci[i+1:], "oci://"+oci[:i], "oci://"+oci[:i], version, "", "")
		if err != nil {
			return "", fmt.Errorf("%s(%q): %w", b.Name(), name, err)
		}
		return dir, nil
	}
	p := l.abs(thread, chart)
	l.record(p)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if repo, rest, ok := strings.Cut(chart, "/"); ok && !strings.Contains(chart, "://") && !strings.Contains(rest, "/") {
		r, ok := l.helmRepos[repo]
		if !ok {
			r, ok = l.helmCLIRepo(repo)
		}
		if ok {
			dir, err := l.cachedChart(rest, r.url, repo, version, r.username, r.password)
			if err != nil {
				return "", fmt.Errorf("%s(%q): %w", b.Name(), name, err)
			}
			return dir, nil
		}
	}
	return "", fmt.Errorf("%s(%q): chart %q is neither a local chart directory nor a packaged chart (%s does not exist) "+
		"nor REPO/NAME of a helm_repo() or of `helm repo add`, nor oci://", b.Name(), name, chart, p)
}

// helmCLIRepo is repository name as `helm repo add` registered it
// (helm's repositories.yaml: $HELM_REPOSITORY_CONFIG, else helm's config
// dir), which `helm install REPO/CHART` would use, as Tilt's helm_resource
// does through the helm CLI.
func (l *loader) helmCLIRepo(name string) (helmRepo, bool) {
	path := cli.New().RepositoryConfig
	if v, ok := l.env["HELM_REPOSITORY_CONFIG"]; ok && v != "" {
		path = v
	}
	l.record(path)
	f, err := repo.LoadFile(path)
	if err != nil {
		return helmRepo{}, false
	}
	e := f.Get(name)
	if e == nil {
		return helmRepo{}, false
	}
	return helmRepo{url: e.URL, username: e.Username, password: e.Password}, true
}

// cachedChart is chart of repoURL in the chart cache, in the layout of the
// helm_remote extension's cache: CACHE/REPO/VERSION/CHART ("latest" when no
// version is asked for). A chart not there is a *Missing for `loop fetch`.
func (l *loader) cachedChart(chart, repoURL, repoName, version, username, password string) (string, error) {
	v := version
	if v == "" {
		v = "latest"
	}
	c := filepath.Join(l.chartCache(), repoName, v, chart)
	l.record(filepath.Join(c, "Chart.yaml"))
	if _, err := os.Stat(filepath.Join(c, "Chart.yaml")); err == nil {
		return c, nil
	}
	if v == "latest" {
		version = ""
	}
	return "", &Missing{Kind: MissingChart, Name: chart, URL: repoURL, Version: version,
		Username: username, Password: password, Dest: c}
}

// chartCache is the helm_remote extension's chart cache:
// $TILT_HELM_REMOTE_CACHE_DIR, else .helm beside the extension store.
func (l *loader) chartCache() string {
	cache := os.Getenv("TILT_HELM_REMOTE_CACHE_DIR")
	if v, ok := l.env["TILT_HELM_REMOTE_CACHE_DIR"]; ok {
		cache = v
	}
	if cache == "" {
		cache = filepath.Join(filepath.Dir(l.stores()[0]), ".helm")
	}
	return cache
}

// helmRepo is a helm_repo() registration.
type helmRepo struct{ url, username, password string }

// helmRepoBuiltin is helm_repo(): it names a chart repository for helm_resource's
// repo/chart references and, as the extension, is a resource others may
// depend on. loop needs no `helm repo add`: the resource only says so.
func (l *loader) helmRepoBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name, u, resourceName, username, password string
	var rest []starlark.Tuple
	known := map[string]bool{"name": true, "url": true, "resource_name": true, "username": true, "password": true}
	var mine []starlark.Tuple
	for _, kv := range kwargs {
		if known[string(kv[0].(starlark.String))] {
			mine = append(mine, kv)
		} else {
			rest = append(rest, kv)
		}
	}
	if err := starlark.UnpackArgs(b.Name(), args, mine, "name", &name, "url", &u,
		"resource_name?", &resourceName, "username?", &username, "password?", &password); err != nil {
		return nil, err
	}
	if resourceName == "" {
		resourceName = name
	}
	if l.helmRepos == nil {
		l.helmRepos = map[string]helmRepo{}
	}
	l.helmRepos[name] = helmRepo{url: u, username: username, password: password}
	msg := fmt.Sprintf("helm repo %s is %s (loop renders charts in process; `loop fetch` pulls its charts)", name, u)
	kw := append([]starlark.Tuple{{starlark.String("name"), starlark.String(resourceName)},
		{starlark.String("cmd"), starlark.NewList([]starlark.Value{starlark.String("echo"), starlark.String(msg)})},
		{starlark.String("allow_parallel"), starlark.True}}, rest...)
	return l.localResource(thread, starlark.NewBuiltin("local_resource", nil), nil, kw)
}

// helmRemote is helm_remote(): as the extension, the chart's YAML goes to
// k8s_yaml (grouped into workloads as any manifest) and is returned. The
// chart must be local: repo_url file://DIR or a directory (DIR/chart), or the
// extension's cache ($TILT_HELM_REMOTE_CACHE_DIR, else .helm beside the
// extension store) where helm_remote pulled it before.
func (l *loader) helmRemote(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	text, allowDup, err := l.helmRemoteRender(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	l.cfg.K8sSources = append(l.cfg.K8sSources, &model.K8sSource{Kind: model.K8sYAML, YAML: text.text, AllowDuplicates: allowDup,
		Helm: text.rendered.src.Helm, Pos: pos(thread)})
	text.rendered.attached = true
	return text, nil
}

// helmRemoteYAML is helm_remote_yaml(): the rendered YAML, not deployed.
func (l *loader) helmRemoteYAML(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	text, _, err := l.helmRemoteRender(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	return text, nil
}

func (l *loader) helmRemoteRender(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (*Blob, bool, error) {
	var (
		chart, repoURL, repoName, releaseName, namespace, version, username, password string
		values, set                                                                   stringList
		allowDup, createNS                                                            bool
		installCRDs                                                                   = true
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "chart", &chart, "repo_url?", &repoURL,
		"repo_name?", &repoName, "release_name?", &releaseName, "values?", &values, "set?", &set,
		"namespace?", &namespace, "version?", &version, "username?", &username, "password?", &password,
		"allow_duplicates?", &allowDup, "create_namespace?", &createNS, "install_crds?", &installCRDs,
	); err != nil {
		return nil, false, err
	}
	if repoName == "" {
		repoName = chart
	}
	if releaseName == "" {
		releaseName = chart
	}
	if namespace == "" {
		namespace = "default"
	}
	if version == "" {
		version = "latest"
	}
	dir, err := l.remoteChart(thread, chart, repoURL, repoName, version)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", b.Name(), err)
	}
	for _, s := range set.vals {
		if !strings.Contains(s, "=") {
			return nil, false, errorf(b, "set: %q is not KEY=VALUE", s)
		}
	}
	h := &model.HelmArgs{Chart: dir, Name: releaseName, Namespace: namespace, Values: l.absAll(thread, values.vals),
		Set: set.vals, SkipCRDs: !installCRDs}
	text, err := l.helmRender(b, h, nil)
	if err != nil {
		return nil, false, err
	}
	if createNS && namespace != "default" {
		text = namespaceYAML(namespace) + "---\n" + text
	}
	return l.renderedBlob(text, &model.K8sSource{Kind: model.K8sYAML, Helm: h, Pos: pos(thread)}), allowDup, nil
}

// remoteChart finds helm_remote's chart on disk.
func (l *loader) remoteChart(thread *starlark.Thread, chart, repoURL, repoName, version string) (string, error) {
	var tried []string
	if d, ok := strings.CutPrefix(repoURL, "file://"); ok || (repoURL != "" && !strings.Contains(repoURL, "://")) {
		if !ok {
			d = l.abs(thread, repoURL)
		}
		for _, c := range []string{filepath.Join(d, chart), d} {
			l.record(filepath.Join(c, "Chart.yaml"))
			if _, err := os.Stat(filepath.Join(c, "Chart.yaml")); err == nil {
				return c, nil
			}
			tried = append(tried, c)
		}
	}
	if strings.HasPrefix(repoURL, "oci://") {
		repoName = repoURL
	}
	if version == "latest" {
		version = ""
	}
	if repoURL == "" {
		// helm_remote without repo_url uses a chart a helm_repo() named, or
		// one a previous pull left in the cache.
		r, ok := l.helmRepos[repoName]
		if !ok {
			c, err := l.cachedChart(chart, "", repoName, version, "", "")
			var m *Missing
			if errors.As(err, &m) {
				return "", fmt.Errorf("chart %q: give repo_url (no helm_repo is named %q, and %s is not there)", chart, repoName, m.Dest)
			}
			return c, err
		}
		repoURL = r.url
	}
	c, err := l.cachedChart(chart, repoURL, repoName, version, "", "")
	if err != nil && len(tried) > 0 {
		return "", fmt.Errorf("%w; also looked in %s", err, strings.Join(tried, ", "))
	}
	return c, err
}

// namespaceYAML is a Namespace object.
func namespaceYAML(ns string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + ns + "\n"
}

// imageKeyList reads image_keys: each entry a key (the whole ref), a tuple of
// (repository, tag) or (registry, repository, tag), or a list of those.
func imageKeyList(v starlark.Value) ([][][]string, error) {
	if v == starlark.None {
		return nil, nil
	}
	seq, ok := v.(starlark.Indexable)
	if !ok {
		return nil, fmt.Errorf("got %s, want a list", v.Type())
	}
	one := func(x starlark.Value) ([]string, error) {
		switch k := x.(type) {
		case starlark.String:
			return []string{string(k)}, nil
		case starlark.Tuple:
			if k.Len() != 2 && k.Len() != 3 {
				return nil, fmt.Errorf("a tuple must be (repository, tag) or (registry, repository, tag), got %d keys", k.Len())
			}
			return toStringList(k)
		}
		return nil, fmt.Errorf("got %s, want a string or a tuple", x.Type())
	}
	out := make([][][]string, seq.Len())
	for i := 0; i < seq.Len(); i++ {
		x := seq.Index(i)
		if l, ok := x.(*starlark.List); ok {
			for j := 0; j < l.Len(); j++ {
				k, err := one(l.Index(j))
				if err != nil {
					return nil, fmt.Errorf("entry %d: %w", i, err)
				}
				out[i] = append(out[i], k)
			}
			continue
		}
		k, err := one(x)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out[i] = [][]string{k}
	}
	return out, nil
}

// imageValues are the KEY=VALUE settings that inject ref through keys, as
// the extension's helper splits a ref (registry, repository, tag).
func imageValues(keys []string, ref string) []string {
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	switch len(keys) {
	case 1:
		return []string{keys[0] + "=" + ref}
	case 2:
		return []string{keys[0] + "=" + repo, keys[1] + "=" + tag}
	}
	registry, path := "docker.io", repo
	if first, rest, ok := strings.Cut(repo, "/"); ok && strings.ContainsAny(first, ".:") {
		registry, path = first, rest
	}
	return []string{keys[0] + "=" + registry, keys[1] + "=" + path, keys[2] + "=" + tag}
}

// helmFlags are the helm install flags loop honours.
type helmFlags struct {
	set, setString, values []string
	namespace, version     string
	createNamespace        bool
	ignored                []string
}

// parseHelmFlags reads helm_resource(flags=): --set, --set-string,
// --values/-f, --namespace/-n, --create-namespace; others are reported as
// ignored. abs resolves a values file.
func parseHelmFlags(flags []string, abs func(string) string) (helmFlags, error) {
	var hf helmFlags
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		name, val, hasVal := strings.Cut(f, "=")
		takes := map[string]bool{"--set": true, "--set-string": true, "--values": true, "-f": true, "--namespace": true, "-n": true, "--version": true}
		if takes[name] && !hasVal {
			if i+1 >= len(flags) {
				return hf, fmt.Errorf("%s needs a value", name)
			}
			i++
			val = flags[i]
		}
		switch name {
		case "--set":
			hf.set = append(hf.set, val)
		case "--set-string":
			hf.setString = append(hf.setString, val)
		case "--values", "-f":
			hf.values = append(hf.values, abs(val))
		case "--namespace", "-n":
			hf.namespace = val
		case "--version":
			hf.version = val
		case "--create-namespace":
			hf.createNamespace = true
		default:
			hf.ignored = append(hf.ignored, f)
		}
	}
	return hf, nil
}
