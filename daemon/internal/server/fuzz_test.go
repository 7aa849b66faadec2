package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

type fuzzControl struct{}

var errFuzzUnknown = errors.New("unknown")

func (fuzzControl) Trigger(_ context.Context, name string) error {
	if name != "web" {
		return errFuzzUnknown
	}
	return nil
}

func (fuzzControl) SetEnabled(_ context.Context, name string, _ bool) error {
	return fuzzControl{}.Trigger(context.Background(), name)
}

func (fuzzControl) Wait(context.Context, api.WaitRequest) (api.Verdict, error) {
	return api.Verdict{Result: api.ResultReady}, nil
}

// FuzzRequest sends arbitrary methods, paths and query strings to the API's
// routes. Decoding a request must never panic; every answer has a status the
// API documents, and every non-streaming error body is an api.Error.
func FuzzRequest(f *testing.F) {
	for _, target := range []string{
		"/v1/state?logs=5", "/v1/state?logs=-1", "/v1/events?after=0", "/v1/events?after=x&instance=zz",
		"/v1/logs?resource=web&tail=3&since=5m", "/v1/logs?since=2026-01-02T03:04:05Z&after=18446744073709551615",
		"/v1/logs?resource=nope", "/v1/resources/web/trigger", "/v1/resources/%2e%2e/enable", "/metrics", "/nope",
	} {
		f.Add("GET", target)
		f.Add("POST", target)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, "http://loop"+target, nil)
		if err != nil {
			return
		}
		// Streams end at once: the fuzzer checks decoding, not following.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req = req.WithContext(ctx)
		s := &Server{o: Options{Control: fuzzControl{}, UnknownResource: errFuzzUnknown, Now: func() time.Time { return time.Unix(1e9, 0) }},
			st: newStore(10, 100), instance: "fuzz"}
		s.Sink(api.Event{Kind: api.EventStatus, Resource: "web", Status: &api.ResourceStatus{Name: "web", Phase: api.PhaseReady}})
		s.Sink(api.Event{Kind: api.EventLog, Resource: "web", Text: "hello", Time: time.Unix(1e9, 0)})
		rec := httptest.NewRecorder()
		s.routes().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusMovedPermanently, http.StatusTemporaryRedirect,
			http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone, http.StatusServiceUnavailable:
		default:
			t.Fatalf("%s %s: status %d", method, target, rec.Code)
		}
		if rec.Code >= 400 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: status %d with body %q, want an api.Error", method, target, rec.Code, rec.Body.String())
			}
		}
	})
}
