package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

const goAppV1 = `package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("app v1 started")
	for {
		time.Sleep(time.Hour)
	}
}
`

// goProject is a Compose project whose service runs a Go program that a
// local_resource compiles; its static files are live-synced.
func goProject(t testing.TB) string {
	t.Helper()
	testenv.Busybox(t)
	dir := t.TempDir()
	name := fmt.Sprintf("looptest-wait-%d", time.Now().UnixNano()%1000000)
	writeProject(t, dir, map[string]string{
		"go.mod":              "module waitapp\n\ngo 1.26\n",
		"src/main.go":         goAppV1,
		"image/Dockerfile":    "FROM loop-test/busybox:latest\nCOPY bin/app /app\nCOPY static /static\nCMD [\"/app\"]\n",
		"image/static/a.txt":  "a0\n",
		"image/.dockerignore": "",
		"compose.yaml":        "services:\n  app:\n    image: looptest/waitapp\n",
		"Tiltfile": `
local_resource('compile', cmd='CGO_ENABLED=0 go build -o image/bin/app ./src', deps=['src', 'go.mod'])
docker_build('looptest/waitapp', 'image', live_update=[sync('image/static', '/static')])
docker_compose('compose.yaml', project_name='` + name + `')
dc_resource('app', resource_deps=['compile'])
`,
	})
	t.Cleanup(func() {
		if _, errOut, code := runLoop(t, dir, "down"); code != 0 {
			t.Logf("loop down: exit %d %s", code, errOut)
		}
	})
	return dir
}

// mcpClient is a test MCP client on `loop mcp --up` over stdio.
type mcpClient struct {
	t       *testing.T
	sess    *mcp.ClientSession
	mu      sync.Mutex
	updated []string // URIs of resource updates received
}

func startMCP(t *testing.T, dir string) *mcpClient {
	t.Helper()
	mc := &mcpClient{t: t}
	cl := mcp.NewClient(&mcp.Implementation{Name: "loop-test", Version: "0"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			mc.mu.Lock()
			mc.updated = append(mc.updated, req.Params.URI)
			mc.mu.Unlock()
		},
	})
	cmd := exec.Command(loopBin, "mcp", "--up")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	ctx := context.Background()
	sess, err := cl.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 30 * time.Second}, nil)
	if err != nil {
		t.Fatalf("connect to loop mcp: %v", err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	mc.sess = sess
	if err := sess.Subscribe(ctx, &mcp.SubscribeParams{URI: "loop://status/app"}); err != nil {
		t.Fatal(err)
	}
	return mc
}

// call calls a tool and decodes its structured result into out.
func (mc *mcpClient) call(name string, args map[string]any, out any) {
	mc.t.Helper()
	res, err := mc.sess.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		mc.t.Fatalf("call %s: %v", name, err)
	}
	if res.IsError {
		mc.t.Fatalf("call %s: tool error: %+v", name, res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		mc.t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		mc.t.Fatalf("call %s: decode %s: %v", name, b, err)
	}
}

// text calls a tool whose result is text and returns it.
func (mc *mcpClient) text(name string, args map[string]any) string {
	mc.t.Helper()
	res, err := mc.sess.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil || res.IsError || len(res.Content) != 1 {
		mc.t.Fatalf("call %s: %v %+v", name, err, res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		mc.t.Fatalf("call %s: content %T", name, res.Content[0])
	}
	return tc.Text
}

func (mc *mcpClient) wait(args map[string]any) api.Verdict {
	mc.t.Helper()
	var v api.Verdict
	mc.call("wait", args, &v)
	return v
}

// TestMCPGoService drives a Compose service compiled by a local_resource
// through `loop mcp` with the Go SDK's client: a broken compile's verdict
// has the compiler's line, the fix a rebuild with its trace, a synced file a
// live update; then many rounds of write-then-wait never miss the write
// (LOOP_WAIT_ROUNDS, default 100; the 1,000 with
// LOOP_WAIT_ROUNDS=1000).
func TestMCPGoService(t *testing.T) {
	dir := goProject(t)
	mc := startMCP(t, dir)

	tools, err := mc.sess.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		if tool.InputSchema == nil {
			t.Errorf("tool %s has no input schema", tool.Name)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"diff", "dump_resources", "logs", "metrics", "render", "status", "trigger", "wait"}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}

	v := mc.wait(map[string]any{"timeout_seconds": 600})
	if v.Result != api.ResultReady {
		t.Fatalf("first wait: %+v", v)
	}

	// A broken compile: failed, naming compile, with the compiler's line.
	writeFile(t, dir, "src/main.go", strings.Replace(goAppV1, `fmt.Println("app v1 started")`, `var n int = "oops"`+"\n\tfmt.Println(n)", 1))
	v = mc.wait(nil)
	r, _ := resourceVerdict(v, "compile")
	compilerLine := regexp.MustCompile(`main\.go:\d+:\d+: .*"oops"`)
	if v.Result != api.ResultFailed || v.Failed != "compile" || !slices.ContainsFunc(r.Logs, compilerLine.MatchString) {
		t.Fatalf("broken compile: verdict %+v", v)
	}

	// The fix: compile ready with its trace, then the image rebuilt from
	// its output (the wait covers the files the compile wrote).
	writeFile(t, dir, "src/main.go", strings.Replace(goAppV1, "app v1", "app v2", 1))
	v = mc.wait(nil)
	r, _ = resourceVerdict(v, "compile")
	app, _ := resourceVerdict(v, "app")
	if v.Result != api.ResultReady || r.Update == nil || len(r.Update.Spans) == 0 || r.Update.Spans[0].Name != api.SpanCmd {
		t.Fatalf("fixed compile: verdict %+v", v)
	}
	if !app.Affected || app.Update == nil || app.Update.Kind != api.UpdateRebuild || app.Phase != api.PhaseReady {
		t.Fatalf("the fix did not rebuild app within the wait: %+v", app)
	}
	var st statusOut
	mc.call("status", map[string]any{"resources": []string{"app"}}, &st)
	if len(st.Resources) != 1 || st.Resources[0].ContainerID == "" {
		t.Fatalf("status: %+v", st)
	}
	id := st.Resources[0].ContainerID
	// The service's output streams in after it started: the logs tool
	// finds it (a container that is up is ready; its output may follow).
	for deadline := time.Now().Add(time.Minute); ; {
		var logs logsOut
		mc.call("logs", map[string]any{"resource": "app", "grep": "app v2"}, &logs)
		if len(logs.Lines) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app's logs lack its new output")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A synced file: a live update, in the container when wait returns.
	writeFile(t, dir, "image/static/a.txt", "live 1\n")
	v = mc.wait(nil)
	app, _ = resourceVerdict(v, "app")
	if v.Result != api.ResultReady || app.Update == nil || app.Update.Kind != api.UpdateLive || !slices.Contains(app.Update.Paths, "image/static/a.txt") {
		t.Fatalf("synced file: verdict %+v", v)
	}
	if got, _ := testenv.ExecCode(t, id, "cat", "/static/a.txt"); got != "live 1\n" {
		t.Fatalf("after wait the container has %q", got)
	}

	// Status changes of app arrived as updates of the resource subscribed to.
	mc.mu.Lock()
	updated := slices.Clone(mc.updated)
	mc.mu.Unlock()
	if !slices.Contains(updated, "loop://status/app") || slices.Contains(updated, "loop://status/compile") {
		t.Errorf("resource updates received: %v; want loop://status/app (subscribed) and no other", updated)
	}
	res, err := mc.sess.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "loop://status/app"})
	if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, `"phase": "ready"`) {
		t.Fatalf("read loop://status/app: %v %+v", err, res)
	}

	// The other tools answer within their bounds.
	if out := mc.text("metrics", nil); !strings.Contains(out, `"compile"`) || len(out) > mcpMaxText+100 {
		t.Errorf("metrics: %.300s", out)
	}
	if out := mc.text("dump_resources", nil); !strings.Contains(out, `"name": "app"`) {
		t.Errorf("dump_resources: %.300s", out)
	}
	var trig triggerOut
	mc.call("trigger", map[string]any{"resource": "compile"}, &trig)
	// (The compile writes the binary again: app may be rebuilt, in the wait.)
	if v = mc.wait(nil); trig.Triggered != "compile" || v.Result != api.ResultReady {
		t.Fatalf("trigger then wait: %+v %+v", trig, v)
	}
	mc.call("status", map[string]any{"resources": []string{"app"}}, &st)
	id = st.Resources[0].ContainerID
	if res, err := mc.sess.CallTool(context.Background(), &mcp.CallToolParams{Name: "trigger", Arguments: map[string]any{"resource": "rm -rf /"}}); err != nil || !res.IsError {
		t.Errorf("trigger of an undeclared name: %v %+v", err, res)
	}

	// The barrier is exact: write, wait at once (the binary, as a script
	// would), and the container has the write.
	rounds := 100
	if n, err := strconv.Atoi(os.Getenv("LOOP_WAIT_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	for i := range rounds {
		want := fmt.Sprintf("round %d\n", i)
		writeFile(t, dir, "image/static/n.txt", want)
		var code int
		var errOut string
		if i%2 == 0 {
			_, errOut, code = runLoop(t, dir, "wait", "app")
		} else {
			v = mc.wait(map[string]any{"resources": []string{"app"}})
			if v.Result != api.ResultReady {
				code = 1
			}
		}
		if code != 0 {
			t.Fatalf("round %d: wait exit %d %s %+v", i, code, errOut, v)
		}
		if got, _ := testenv.ExecCode(t, id, "cat", "/static/n.txt"); got != want {
			t.Fatalf("round %d: wait returned before the write reached the container: it has %q, want %q", i, got, want)
		}
	}
}
