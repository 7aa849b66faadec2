package render

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// renderSources renders a multi-source Application (spec.sources) when every source is
// in the work tree at repoRoot: each source with a path is rendered as a single source
// would be, the objects combined in source order (a later source's object replaces an
// earlier one of the same group, kind, namespace and name, as in Argo CD); a source's
// ref names it for Helm value files ($ref/path is path from that source's repository
// root). A source is in the work tree when its repoURL is one of the tree's Git remotes,
// or, in a tree without remotes, when every source has the same repoURL.
func renderSources(ctx context.Context, app *App, sources []any, repoRoot string) error {
	remotes := gitRemotes(repoRoot)
	raws := make([]map[string]any, len(sources))
	urls := map[string]bool{}
	refs := map[string]string{}
	for i, s := range sources {
		raw, ok := s.(map[string]any)
		if !ok {
			return fmt.Errorf("spec.sources[%d] is not a mapping", i)
		}
		raws[i] = raw
		if chart, _ := raw["chart"].(string); chart != "" {
			return fmt.Errorf("spec.sources[%d].chart %q is a chart from a Helm repository; loop renders sources from the working tree only", i, chart)
		}
		url, _ := raw["repoURL"].(string)
		urls[normalizeRepoURL(url)] = true
		if len(remotes) > 0 && !slices.Contains(remotes, normalizeRepoURL(url)) {
			return fmt.Errorf("spec.sources[%d]: repoURL %s is not the repository of the work tree %s (its remotes: %s); "+
				"loop renders sources from the local work tree only", i, url, repoRoot, strings.Join(remotes, ", "))
		}
		if ref, _ := raw["ref"].(string); ref != "" {
			refs[ref] = repoRoot
		}
	}
	if len(remotes) == 0 && len(urls) > 1 {
		return fmt.Errorf("spec.sources name %d repositories and the work tree %s has no Git remote to tell which is local; "+
			"loop renders sources from the local work tree only", len(urls), repoRoot)
	}
	var tools []string
	index := map[string]int{}
	for i, raw := range raws {
		_, hasPath := raw["path"]
		if ref, _ := raw["ref"].(string); ref != "" && !hasPath {
			continue // a source of value files only
		}
		tool, objs, err := renderSource(ctx, app, raw, fmt.Sprintf("spec.sources[%d]", i), repoRoot, refs)
		if err != nil {
			return err
		}
		if len(tools) == 0 {
			app.Path, _ = raw["path"].(string)
		}
		tools = append(tools, tool)
		for _, o := range objs {
			k := Key(o)
			if j, ok := index[k]; ok {
				app.Objects[j] = o
				continue
			}
			index[k] = len(app.Objects)
			app.Objects = append(app.Objects, o)
		}
	}
	if len(tools) == 0 {
		return fmt.Errorf("spec.sources: no source has a path to render")
	}
	app.Tool = strings.Join(tools, "+")
	return nil
}

// gitRemotes reads the normalised remote URLs of the Git work tree at root (a
// repository or a linked worktree); none when root is not one.
func gitRemotes(root string) []string {
	gitDir := filepath.Join(root, ".git")
	st, err := os.Stat(gitDir)
	if err != nil {
		return nil
	}
	if !st.IsDir() {
		// A linked worktree: .git says where its git dir is, whose commondir holds the config.
		data, err := os.ReadFile(gitDir)
		if err != nil {
			return nil
		}
		d, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir:")
		if !ok {
			return nil
		}
		gitDir = strings.TrimSpace(d)
		if !filepath.IsAbs(gitDir) {
			gitDir = filepath.Join(root, gitDir)
		}
		if c, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
			common := strings.TrimSpace(string(c))
			if !filepath.IsAbs(common) {
				common = filepath.Join(gitDir, common)
			}
			gitDir = common
		}
	}
	f, err := os.Open(filepath.Join(gitDir, "config"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	inRemote := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			inRemote = strings.HasPrefix(line, "[remote ")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if inRemote && ok && strings.TrimSpace(k) == "url" {
			out = append(out, normalizeRepoURL(strings.Trim(strings.TrimSpace(v), `"`)))
		}
	}
	return out
}

// normalizeRepoURL makes the spellings of one repository's URL equal: no scheme, user,
// ".git" or trailing slash, scp-style host:path as host/path, lower case.
func normalizeRepoURL(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	} else if host, path, ok := strings.Cut(u, ":"); ok && !strings.Contains(host, "/") {
		u = host + "/" + path // git@host:org/repo
	}
	if at := strings.Index(u, "@"); at >= 0 && at < strings.Index(u+"/", "/") {
		u = u[at+1:]
	}
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	return u
}
