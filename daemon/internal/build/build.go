// Package build turns a docker_build target into an image on the Docker
// engine: it streams the build context (filtered by the ignore rules), builds
// with the engine's classic builder through the Docker API, and tags the
// result by a hash of its inputs, so that inputs seen before give back the
// image already built without a build.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	buildtypes "github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/model"
)

// Labels put on every image the Builder builds.
const (
	LabelManaged = "dev.loop.managed"
	LabelImage   = "dev.loop.image"
)

// TagPrefix starts every tag the Builder gives (name:loop-<hash>).
const TagPrefix = "loop-"

// DockerAPI is the part of the Docker client the Builder uses.
type DockerAPI interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options buildtypes.ImageBuildOptions) (buildtypes.ImageBuildResponse, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageTag(ctx context.Context, source, target string) error
	ImagePush(ctx context.Context, ref string, options image.PushOptions) (io.ReadCloser, error)
	// DialHijack opens the engine's /session endpoint for a BuildKit session.
	DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error)
}

// Builder builds docker_build targets. It holds no state between builds and
// is safe for concurrent use.
type Builder struct {
	cli DockerAPI
	// memLimit is how much of a context is held in memory before it spills
	// to a temporary file.
	memLimit int
	// labels are added to every image (tests mark theirs).
	labels map[string]string
}

// New returns a Builder using cli, which should negotiate the API version.
func New(cli DockerAPI) *Builder {
	return &Builder{cli: cli, memLimit: 64 << 20}
}

// Result describes a built (or found) image.
type Result struct {
	// Ref is name:tag with the tag derived from the build's inputs, e.g.
	// example/hello:loop-3f2a9c1e0b7d.
	Ref          string
	ImageID      string
	ContextFiles int
	ContextBytes int64
	Duration     time.Duration
	// Cached is true when an image with Ref existed and no build ran.
	Cached bool
	// ForRegistry is true when Ref already is the registry's name
	// (Options.Registry): a custom_build made it so.
	ForRegistry bool
	// NoPush is true when the image must not be pushed: a custom_build's
	// command does that (disable_push, skips_local_docker).
	NoPush bool
	// NotLocal is true when the image is not in the engine
	// (skips_local_docker): nothing can load it anywhere.
	NotLocal bool
}

// BuildWith builds img after the images of all it is built from (Chain),
// each at most once per call: where a docker_build's FROM or COPY --from
// names one of them, it is given that image's built ref, as Tilt injects
// it; a custom_build gets them in $TILT_IMAGE_i. So a change to a base image
// gives its dependents new refs too. opts apply to img only: the images it is
// built from stay in the engine, where the builds of the others find them.
func (b *Builder) BuildWith(ctx context.Context, img *model.Image, all []*model.Image, opts Options, logs io.Writer) (Result, error) {
	if logs == nil {
		logs = io.Discard
	}
	chain, err := Chain(img, all)
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", img.Ref, err)
	}
	built := map[string]string{} // ref as written in the config -> built ref
	var res Result
	for _, i := range chain {
		var o Options
		if i == img {
			o = opts
		} else {
			fmt.Fprintf(logs, "building %s, which %s is built from\n", i.Ref, img.Ref)
		}
		if i.Custom != nil {
			var deps []string
			for _, d := range i.Custom.ImageDeps {
				ref, ok := builtRef(d, built)
				if !ok {
					return Result{}, fmt.Errorf("build %s: image_deps names %s, which the Tiltfile does not build", i.Ref, d)
				}
				deps = append(deps, ref)
			}
			res, err = b.buildCustom(ctx, i, deps, o, logs)
		} else {
			res, err = b.Build(ctx, withBases(i, built), logs)
		}
		if err != nil {
			return Result{}, err
		}
		if i != img && res.NotLocal {
			return Result{}, fmt.Errorf("build %s: %s is built from %s, which skips the local Docker engine", img.Ref, img.Ref, i.Ref)
		}
		built[i.Ref] = res.Ref
	}
	return res, nil
}

// builtRef is the built ref of the image named used.
func builtRef(used string, built map[string]string) (string, bool) {
	for ref, to := range built {
		if refMatches(ref, used) {
			return to, true
		}
	}
	return "", false
}

// withBases is img with its Dockerfile naming the built refs of the images
// it is built from; img itself when it names none.
func withBases(img *model.Image, built map[string]string) *model.Image {
	if len(built) == 0 {
		return img
	}
	df, err := readDockerfile(img)
	if err != nil {
		return img // the build reports it
	}
	out := rewriteBases(string(df), img.BuildArgs, built)
	if out == string(df) {
		return img
	}
	c := *img
	c.DockerfileContents = out // Dockerfile stays: its .dockerignore applies
	return &c
}

// Build builds img, or finds the image built before from the same inputs
// (context content, Dockerfile, build args, target, platform). The build
// output goes to logs as plain lines. A failed build returns an error that
// carries the failing step and the engine's message.
func (b *Builder) Build(ctx context.Context, img *model.Image, logs io.Writer) (Result, error) {
	start := time.Now()
	if img.Custom != nil {
		return Result{}, fmt.Errorf("build %s: a custom_build is not a docker build", img.Ref)
	}
	if logs == nil {
		logs = io.Discard
	}
	m, err := ignore.ForContext(img.Context, img.Dockerfile, img.Only, img.Ignore)
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", img.Ref, err)
	}
	m = ignore.Any(m, ignore.Defaults())
	df, err := readDockerfile(img)
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", img.Ref, err)
	}
	builder := buildtypes.BuilderV1
	if useBuildKit(df) || len(img.SSH) > 0 || len(img.BuildSecrets) > 0 {
		builder = buildtypes.BuilderBuildKit
		if syntax, without, ok := syntaxDirective(df); ok {
			if _, err := b.cli.ImageInspect(ctx, syntax); err != nil {
				// BuildKit would pull the frontend image: on a machine
				// without it the engine's own Dockerfile frontend builds.
				fmt.Fprintf(logs, "the Dockerfile asks for the frontend %s, which is not on this machine: building with the engine's own Dockerfile frontend\n", syntax)
				c := *img
				c.DockerfileContents = without
				img, df = &c, []byte(without)
			}
		}
	}

	// The context is written once, to memory (or a temporary file when large),
	// so that the tag names exactly the bytes the engine receives.
	buf := &spillBuffer{limit: b.memLimit}
	defer buf.Close()
	st, err := writeContext(ctx, img, df, m, buf)
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", img.Ref, err)
	}
	ref := Ref(img, st.hash)
	res := Result{Ref: ref, ContextFiles: st.files, ContextBytes: st.bytes}

	if insp, err := b.cli.ImageInspect(ctx, ref); err == nil {
		for _, t := range img.ExtraTag {
			if err := b.cli.ImageTag(ctx, ref, t); err != nil {
				return Result{}, fmt.Errorf("tag %s as %s: %w", ref, t, err)
			}
		}
		res.ImageID, res.Cached, res.Duration = insp.ID, true, time.Since(start)
		return res, nil
	} else if !cerrdefs.IsNotFound(err) {
		return Result{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}

	body, err := buf.Reader()
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", ref, err)
	}
	opts := buildtypes.ImageBuildOptions{
		Version:     builder,
		Tags:        append([]string{ref}, img.ExtraTag...),
		Dockerfile:  st.dockerfile,
		Target:      img.Target,
		BuildArgs:   buildArgs(img.BuildArgs),
		NetworkMode: img.Network,
		ExtraHosts:  img.ExtraHosts,
		CacheFrom:   img.CacheFrom,
		Platform:    img.Platform,
		PullParent:  img.PullParent,
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{LabelManaged: "true", LabelImage: ref},
	}
	for k, v := range b.labels {
		opts.Labels[k] = v
	}
	if builder == buildtypes.BuilderBuildKit {
		sess, err := b.startSession(ctx, img)
		if err != nil {
			return Result{}, fmt.Errorf("build %s: %w", ref, err)
		}
		defer sess.close()
		opts.SessionID = sess.id()
	}
	resp, err := b.cli.ImageBuild(ctx, body, opts)
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", ref, err)
	}
	defer resp.Body.Close()
	id, err := streamOutput(resp.Body, logs)
	if err != nil {
		return Result{}, fmt.Errorf("build %s: %w", ref, err)
	}
	if id == "" {
		// Older engines report the ID only in text; ask.
		insp, err := b.cli.ImageInspect(ctx, ref)
		if err != nil {
			return Result{}, fmt.Errorf("inspect built image %s: %w", ref, err)
		}
		id = insp.ID
	}
	res.ImageID, res.Duration = id, time.Since(start)
	return res, nil
}

// Ref is the image reference Build gives img when its context hashes to
// contextHash: the image name, and a tag hashing the context together with
// the other inputs that change the image.
func Ref(img *model.Image, contextHash string) string {
	h := sha256.New()
	fmt.Fprintf(h, "loop-build-v1\ncontext %s\ntarget %q\nplatform %q\n", contextHash, img.Target, img.Platform)
	keys := make([]string, 0, len(img.BuildArgs))
	for k := range img.BuildArgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "arg %q=%q\n", k, img.BuildArgs[k])
	}
	return repository(img.Ref) + ":" + TagPrefix + hex.EncodeToString(h.Sum(nil))[:12]
}

// repository strips a tag or digest from ref.
func repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

func buildArgs(args map[string]string) map[string]*string {
	if len(args) == 0 {
		return nil
	}
	out := make(map[string]*string, len(args))
	for k, v := range args {
		out[k] = &v
	}
	return out
}

// streamOutput copies the engine's JSON message stream to logs as plain
// lines and returns the built image's ID. A build error comes back with the
// step that failed.
func streamOutput(r io.Reader, logs io.Writer) (string, error) {
	lw := &stepWriter{w: logs}
	trace := newTraceWriter(lw)
	var id string
	var traceErr error
	err := jsonmessage.DisplayJSONMessagesStream(r, lw, 0, false, func(msg jsonmessage.JSONMessage) {
		if msg.Aux == nil {
			return
		}
		if msg.ID == "moby.buildkit.trace" {
			if err := trace.aux(*msg.Aux); err != nil && traceErr == nil {
				traceErr = err
			}
			return
		}
		var aux buildtypes.Result
		if json.Unmarshal(*msg.Aux, &aux) == nil && aux.ID != "" {
			id = aux.ID
		}
	})
	trace.flush()
	if err != nil {
		var jerr *jsonmessage.JSONError
		if errors.As(err, &jerr) && trace.failed != "" {
			return "", fmt.Errorf("%s: %w", trace.failed, err)
		}
		if errors.As(err, &jerr) && lw.step != "" {
			return "", fmt.Errorf("%s: %w", lw.step, err)
		}
		return "", err
	}
	if traceErr != nil {
		fmt.Fprintf(logs, "(%v)\n", traceErr)
	}
	return id, nil
}

// stepWriter passes output through and remembers the last "Step n/m : ..."
// line of the classic builder.
type stepWriter struct {
	w    io.Writer
	line []byte
	step string
}

func (s *stepWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			if l := strings.TrimSpace(string(s.line)); strings.HasPrefix(l, "Step ") {
				s.step = l
			}
			s.line = s.line[:0]
			continue
		}
		if len(s.line) < 4096 {
			s.line = append(s.line, c)
		}
	}
	return s.w.Write(p)
}

// spillBuffer holds written bytes in memory up to limit, then in a temporary
// file. Reader reads everything back from the start.
type spillBuffer struct {
	limit int
	mem   bytes.Buffer
	file  *os.File
	once  sync.Once
}

func (s *spillBuffer) Write(p []byte) (int, error) {
	if s.file == nil && s.mem.Len()+len(p) > s.limit {
		f, err := os.CreateTemp("", "loop-context-*.tar")
		if err != nil {
			return 0, fmt.Errorf("spill build context to disk: %w", err)
		}
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("spill build context to disk: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	if s.file != nil {
		return s.file.Write(p)
	}
	return s.mem.Write(p)
}

func (s *spillBuffer) Reader() (io.Reader, error) {
	if s.file == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind spilled build context: %w", err)
	}
	return s.file, nil
}

// Close removes the temporary file, if any.
func (s *spillBuffer) Close() {
	s.once.Do(func() {
		if s.file != nil {
			s.file.Close()
			os.Remove(s.file.Name())
		}
	})
}
