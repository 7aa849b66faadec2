package render

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/itchyny/gojq"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/model"
)

// applicationSync reads what an Application says about syncing beyond automated:
// spec.syncPolicy.syncOptions, managedNamespaceMetadata, retry and spec.ignoreDifferences.
func applicationSync(u *unstructured.Unstructured) (model.ArgoSync, error) {
	var spec struct {
		SyncPolicy struct {
			SyncOptions              []string `json:"syncOptions"`
			ManagedNamespaceMetadata *struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"managedNamespaceMetadata"`
			Retry *struct {
				Limit   *int64 `json:"limit"`
				Backoff *struct {
					Duration    string `json:"duration"`
					Factor      *int64 `json:"factor"`
					MaxDuration string `json:"maxDuration"`
				} `json:"backoff"`
			} `json:"retry"`
		} `json:"syncPolicy"`
		IgnoreDifferences []model.IgnoreDifference `json:"ignoreDifferences"`
	}
	var out model.ArgoSync
	raw, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec")
	b, err := json.Marshal(raw)
	if err != nil {
		return out, fmt.Errorf("spec: %w", err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return out, fmt.Errorf("spec.syncPolicy or spec.ignoreDifferences: %w", err)
	}
	p := spec.SyncPolicy
	for _, o := range p.SyncOptions {
		if _, _, err := model.ParseSyncOption(o, true); err != nil {
			return out, fmt.Errorf("spec.syncPolicy.syncOptions: %w", err)
		}
		out.Options = append(out.Options, strings.TrimSpace(o))
	}
	if m := p.ManagedNamespaceMetadata; m != nil {
		out.NamespaceLabels, out.NamespaceAnnotations = m.Labels, m.Annotations
	}
	if r := p.Retry; r != nil {
		out.Retry = &model.ArgoRetry{Limit: 0, Backoff: model.ArgoRetryBackoff, Factor: model.ArgoRetryFactor, MaxDuration: model.ArgoRetryMaxDuration}
		if r.Limit != nil {
			out.Retry.Limit = *r.Limit
		}
		if bo := r.Backoff; bo != nil {
			if bo.Duration != "" {
				if out.Retry.Backoff, err = argoDuration(bo.Duration); err != nil {
					return out, fmt.Errorf("spec.syncPolicy.retry.backoff.duration: %w", err)
				}
			}
			if bo.MaxDuration != "" {
				if out.Retry.MaxDuration, err = argoDuration(bo.MaxDuration); err != nil {
					return out, fmt.Errorf("spec.syncPolicy.retry.backoff.maxDuration: %w", err)
				}
			}
			if bo.Factor != nil {
				if *bo.Factor < 1 {
					return out, fmt.Errorf("spec.syncPolicy.retry.backoff.factor %d: want 1 or more", *bo.Factor)
				}
				out.Retry.Factor = *bo.Factor
			}
		}
	}
	for i, d := range spec.IgnoreDifferences {
		if err := CheckIgnoreDifference(d); err != nil {
			return out, fmt.Errorf("spec.ignoreDifferences[%d]: %w", i, err)
		}
	}
	out.IgnoreDifferences = spec.IgnoreDifferences
	return out, nil
}

// argoDuration reads a retry duration as Argo CD does: a number of seconds, or a Go
// duration ("2m", "1h").
func argoDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration such as 30s or 2m", s)
	}
	return d, nil
}

// CheckIgnoreDifference checks that an ignoreDifferences entry's JSON pointers and
// jq path expressions parse.
func CheckIgnoreDifference(d model.IgnoreDifference) error {
	if d.Kind == "" {
		return fmt.Errorf("no kind (use \"*\" for every kind)")
	}
	for _, p := range d.JSONPointers {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("jsonPointers: %q does not start with /", p)
		}
	}
	for _, e := range d.JQPathExpressions {
		if _, err := gojq.Parse("del(" + e + ")"); err != nil {
			return fmt.Errorf("jqPathExpressions: %q: %w", e, err)
		}
	}
	return nil
}
