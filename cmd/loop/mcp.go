package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
	"github.com/loop-dev/loop/daemon/gitops"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/daemon/statedir"
)

// Bounds of what a tool returns.
const (
	mcpMaxText      = 64 << 10 // bytes of text per result
	mcpDefaultLines = 200
	mcpMaxLines     = 2000
	mcpDefaultWait  = 5 * time.Minute
	mcpMaxWait      = 30 * time.Minute
	// statusURI is the resource whose updates announce status changes.
	statusURI = "loop://status"
)

func newMCPCmd() *cobra.Command {
	var cf clientFlags
	var up bool
	cmd := &cobra.Command{
		Use:   "mcp [-f Tiltfile] [--up]",
		Short: "Serve the Model Context Protocol on stdio, for coding agents (see docs/agents.md)",
		Long: `mcp serves the Model Context Protocol on stdin and stdout, attached to the
project's running daemon (with --up it starts one when none runs, and stops it
when the client goes). Tools: status, wait (the barrier of ` + "`loop wait`" + `, with
its verdict), logs, trigger, metrics, dump_resources, render, diff; every
result is bounded. Status changes are sent as updates of the resources
loop://status and loop://status/NAME to the clients subscribed to them.
Nothing can run a command the Tiltfile does not declare.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := cf.client()
			if err != nil {
				return err
			}
			if up {
				stop, err := ensureDaemon(ctx, &cf, c)
				if err != nil {
					return err
				}
				defer stop()
			}
			return serveMCP(ctx, &cf, c, &mcp.StdioTransport{})
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&up, "up", false, "start the project's daemon when none is running (stopped when the client goes)")
	return cmd
}

// ensureDaemon starts `loop daemon` for the project unless one answers, and
// returns what stops it. Its output goes to mcp-daemon.log in the project's
// state directory: stdout is the protocol's.
func ensureDaemon(ctx context.Context, cf *clientFlags, c *client.Client) (func(), error) {
	if _, err := c.State(ctx, 0); err == nil || !errors.Is(err, client.ErrUnavailable) {
		return func() {}, nil
	}
	tf, err := cf.tiltfilePath()
	if err != nil {
		return nil, err
	}
	dir, err := statedir.For(tf)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "mcp-daemon.log"))
	if err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	args := []string{"daemon", "-f", tf}
	if cf.extensionsDir != "" {
		args = append(args, "--extensions-dir", cf.extensionsDir)
	}
	d := exec.Command(self, args...)
	d.Dir = filepath.Dir(tf)
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	ended := make(chan struct{})
	go func() { _ = d.Wait(); logf.Close(); close(ended) }()
	stop := func() {
		_ = d.Process.Signal(syscall.SIGINT)
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			_ = d.Process.Kill()
			<-ended
		}
	}
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := c.State(ctx, 0); err == nil {
			return stop, nil
		}
		select {
		case <-ended:
			return nil, fmt.Errorf("start the daemon: it ended at once (see %s)", logf.Name())
		case <-deadline.C:
			stop()
			return nil, fmt.Errorf("start the daemon: no answer within a minute (see %s)", logf.Name())
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// Tool inputs: their JSON schemas are derived from these types.
type (
	statusIn struct {
		Resources []string `json:"resources,omitempty" jsonschema:"only these resources (all when empty)"`
	}
	statusOut struct {
		ConfigError string               `json:"config_error,omitempty"`
		Resources   []api.ResourceStatus `json:"resources"`
		Waits       []api.Wait           `json:"waits,omitempty"`
		// LeftOut counts resources left out to keep the result bounded.
		LeftOut int `json:"left_out,omitempty"`
	}
	waitIn struct {
		Resources      []string `json:"resources,omitempty" jsonschema:"wait only for these resources (all when empty)"`
		TimeoutSeconds int      `json:"timeout_seconds,omitempty" jsonschema:"give up after this many seconds (default 300, at most 1800)"`
		Lines          int      `json:"lines,omitempty" jsonschema:"log lines per resource in the verdict (default 60, at most 2000)"`
	}
	logsIn struct {
		Resource    string `json:"resource,omitempty" jsonschema:"the resource (all when empty)"`
		Since       string `json:"since,omitempty" jsonschema:"only lines newer than a duration (5m) or an RFC 3339 time"`
		SinceChange uint64 `json:"since_change,omitempty" jsonschema:"only lines from the first update of this change ID on"`
		Grep        string `json:"grep,omitempty" jsonschema:"only lines matching this RE2 regular expression"`
		Tail        int    `json:"tail,omitempty" jsonschema:"the last N lines (default 200, at most 2000)"`
	}
	logsOut struct {
		Lines []api.LogLine `json:"lines"`
	}
	triggerIn struct {
		Resource string `json:"resource" jsonschema:"the resource to update now (as declared in the Tiltfile)"`
	}
	triggerOut struct {
		Triggered string `json:"triggered"`
	}
	metricsIn struct {
		SinceMinutes int `json:"since_minutes,omitempty" jsonschema:"only updates of the last N minutes (all kept when 0)"`
	}
	noIn struct{}
)

// serveMCP serves the tools over t until the client goes or ctx is done.
func serveMCP(ctx context.Context, cf *clientFlags, c *client.Client, t mcp.Transport) error {
	srv := mcp.NewServer(&mcp.Implementation{Name: "loop", Version: currentVersion().Version}, &mcp.ServerOptions{
		Instructions: "loop runs this project's Tiltfile. After editing files, call wait: it returns once every edit made before the call has reached its result (synced or rebuilt and ready, or failed) with a verdict per resource, including the compiler's or the service's lines.",
		// Subscribing to loop://status is how a client asks for status updates.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	addMCPTools(srv, cf, c)
	srv.AddResource(&mcp.Resource{URI: statusURI, Name: "status", MIMEType: "application/json",
		Description: "every resource's status; updated whenever one changes"},
		func(ctx context.Context, _ *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			snap, err := c.State(ctx, 0)
			if err != nil {
				return nil, cf.explain(err)
			}
			text, _ := boundedJSON(statusOut{ConfigError: snap.ConfigError, Resources: snap.Resources, Waits: snap.Waits})
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: statusURI, MIMEType: "application/json", Text: text}}}, nil
		})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: statusURI + "/{resource}", Name: "resource status", MIMEType: "application/json",
		Description: "one resource's status; updated whenever it changes"},
		func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			name := strings.TrimPrefix(req.Params.URI, statusURI+"/")
			snap, err := c.State(ctx, 0)
			if err != nil {
				return nil, cf.explain(err)
			}
			i := slices.IndexFunc(snap.Resources, func(r api.ResourceStatus) bool { return r.Name == name })
			if i < 0 {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			text, _ := boundedJSON(snap.Resources[i])
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json", Text: text}}}, nil
		})

	nctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); notifyStatus(nctx, srv, c) }()
	err := srv.Run(ctx, t)
	cancel()
	wg.Wait()
	return err
}

// notifyStatus sends, for every status change until ctx is done, an update
// of loop://status and of loop://status/NAME to the clients subscribed to
// them. (MCP's logging notifications are deprecated; resource updates are
// what the protocol keeps.)
func notifyStatus(ctx context.Context, srv *mcp.Server, c *client.Client) {
	last := map[string]api.Phase{}
	for m := range c.Subscribe(ctx, client.SubscribeOptions{}) {
		var changed []string
		switch {
		case m.Snapshot != nil:
			for _, r := range m.Snapshot.Resources {
				if last[r.Name] != r.Phase {
					last[r.Name] = r.Phase
					changed = append(changed, r.Name)
				}
			}
		case m.Event != nil && m.Event.Kind == api.EventStatus && m.Event.Status != nil:
			if r := m.Event.Status; last[r.Name] != r.Phase {
				last[r.Name] = r.Phase
				changed = append(changed, r.Name)
			}
		}
		for _, name := range changed {
			_ = srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: statusURI + "/" + name})
		}
		if len(changed) > 0 {
			_ = srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: statusURI})
		}
	}
}

func addMCPTools(srv *mcp.Server, cf *clientFlags, c *client.Client) {
	explain := func(err error) error {
		if err == nil {
			return nil
		}
		if e := cf.explain(err); e != nil {
			return e
		}
		return err
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "status", Description: "Every resource's status (phase, error, last update with its trace) and the Tiltfile's load error."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in statusIn) (*mcp.CallToolResult, statusOut, error) {
			snap, err := c.State(ctx, 0)
			if err != nil {
				return nil, statusOut{}, explain(err)
			}
			out := statusOut{ConfigError: snap.ConfigError, Waits: snap.Waits, Resources: []api.ResourceStatus{}}
			size := 0
			for _, r := range snap.Resources {
				if len(in.Resources) > 0 && !slices.Contains(in.Resources, r.Name) {
					continue
				}
				b, _ := json.Marshal(r)
				if size += len(b); size > mcpMaxText {
					out.LeftOut++
					continue
				}
				out.Resources = append(out.Resources, r)
			}
			return nil, out, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "wait", Description: "Wait until every file change made before this call has reached its result on every resource it affects (synced or rebuilt and ready, or failed). Returns the verdict: per resource the files, live/rebuild/local, the trace, the status, the error and the log lines that update produced (bounded). Result is ready, failed or timeout."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in waitIn) (*mcp.CallToolResult, api.Verdict, error) {
			timeout := mcpDefaultWait
			if in.TimeoutSeconds > 0 {
				timeout = min(time.Duration(in.TimeoutSeconds)*time.Second, mcpMaxWait)
			}
			v, err := c.Wait(ctx, api.WaitRequest{Resources: in.Resources, Timeout: timeout, Client: "mcp", Lines: min(in.Lines, api.MaxVerdictLines)})
			if err != nil {
				return nil, api.Verdict{}, explain(err)
			}
			boundVerdict(v)
			return nil, *v, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "logs", Description: "Log lines the daemon holds (build output, run steps, commands, services' output), filtered by resource, time, change and pattern; the last 200 by default."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in logsIn) (*mcp.CallToolResult, logsOut, error) {
			tail := mcpDefaultLines
			if in.Tail > 0 {
				tail = min(in.Tail, mcpMaxLines)
			}
			st, err := c.Logs(ctx, client.LogsOptions{Resource: in.Resource, Since: in.Since, Change: in.SinceChange, Grep: in.Grep, Tail: tail})
			if err != nil {
				return nil, logsOut{}, explain(err)
			}
			out := logsOut{Lines: []api.LogLine{}}
			size := 0
			for l := range st.C {
				out.Lines = append(out.Lines, l)
				size += len(l.Text) + 64
			}
			if err := st.Err(); err != nil {
				return nil, logsOut{}, explain(err)
			}
			for size > mcpMaxText && len(out.Lines) > 1 {
				size -= len(out.Lines[0].Text) + 64
				out.Lines = out.Lines[1:]
			}
			return nil, out, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "trigger", Description: "Update a resource the Tiltfile declares now (its pending changes, or a full update). Runs nothing else."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in triggerIn) (*mcp.CallToolResult, triggerOut, error) {
			if err := c.Trigger(ctx, in.Resource); err != nil {
				if errors.Is(err, client.ErrNotFound) {
					return nil, triggerOut{}, fmt.Errorf("trigger %s: no such resource", in.Resource)
				}
				return nil, triggerOut{}, explain(err)
			}
			return nil, triggerOut{Triggered: in.Resource}, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "metrics", Description: "Change-to-result percentiles per resource and update kind, with the time per phase (from the project's timing history)."},
		func(_ context.Context, _ *mcp.CallToolRequest, in metricsIn) (*mcp.CallToolResult, any, error) {
			tf, err := cf.tiltfilePath()
			if err != nil {
				return nil, nil, err
			}
			dir, err := statedir.For(tf)
			if err != nil {
				return nil, nil, err
			}
			var from time.Time
			if in.SinceMinutes > 0 {
				from = time.Now().Add(-time.Duration(in.SinceMinutes) * time.Minute)
			}
			hist, err := metrics.ReadAll(dir, from)
			if err != nil {
				return nil, nil, err
			}
			return jsonResult(hist.Summary(from))
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "dump_resources", Description: "The resources the Tiltfile assembles (commands, services, Kubernetes objects, images and their live_update), as loop dump resources prints them."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
			conf, err := cf.load(ctx, "dump", nil)
			if err != nil {
				return nil, nil, err
			}
			res, err := daemon.Resources(ctx, conf)
			if err != nil {
				return nil, nil, err
			}
			return jsonResult(map[string]any{"resources": res})
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "render", Description: "The Tiltfile's Kubernetes manifests rendered as a GitOps config repo would receive them (one YAML stream, bounded)."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
			conf, err := cf.load(ctx, "render", nil)
			if err != nil {
				return nil, nil, err
			}
			apps, err := render.Apps(ctx, conf, render.Images{})
			if err != nil {
				return nil, nil, err
			}
			var objs []*unstructured.Unstructured
			for _, a := range apps {
				render.DefaultNamespace(a.Objects, a.Namespace)
				objs = append(objs, a.Objects...)
			}
			b, err := render.Encode(objs)
			if err != nil {
				return nil, nil, err
			}
			text, _ := bound(string(b))
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "diff", Description: "What Git would deploy versus what runs in the cluster: per object in sync or differing, with the differences (bounded)."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
			conf, err := cf.load(ctx, "diff", nil)
			if err != nil {
				return nil, nil, err
			}
			rep, err := gitops.Diff(ctx, conf, gitops.DiffOptions{})
			if err != nil {
				return nil, nil, err
			}
			return jsonResult(rep)
		})
}

// bound cuts text to mcpMaxText bytes with a marker saying how much was
// left out.
func bound(s string) (string, bool) {
	if len(s) <= mcpMaxText {
		return s, false
	}
	return s[:mcpMaxText] + fmt.Sprintf("\n… %d more bytes left out", len(s)-mcpMaxText), true
}

func boundedJSON(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return "", fmt.Errorf("encode result: %w", err)
	}
	s, _ := bound(string(b))
	return s, nil
}

// jsonResult is a tool result of v as JSON text, bounded.
func jsonResult(v any) (*mcp.CallToolResult, any, error) {
	text, err := boundedJSON(v)
	if err != nil {
		return nil, nil, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
}

// boundVerdict keeps a verdict within mcpMaxText: the lines of the
// resources reached that are ready go first.
func boundVerdict(v *api.Verdict) {
	for i := len(v.Resources) - 1; i >= 0; i-- {
		b, _ := json.Marshal(v)
		if len(b) <= mcpMaxText {
			return
		}
		if r := &v.Resources[i]; r.Phase != api.PhaseError && len(r.Logs) > 0 {
			r.LogsOmitted += len(r.Logs)
			r.Logs = []string{fmt.Sprintf("… %d lines left out (the verdict's size bound)", r.LogsOmitted)}
		}
	}
}
