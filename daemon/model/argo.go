package model

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ArgoSync is how an Argo CD Application asks to be synced beyond
// syncPolicy.automated: its sync options, the metadata of the namespace
// CreateNamespace=true makes, its retry policy and the differences to ignore.
type ArgoSync struct {
	// Options are spec.syncPolicy.syncOptions, each "Name=value" (ParseSyncOption).
	Options []string `json:"sync_options,omitempty"`
	// NamespaceLabels and NamespaceAnnotations are
	// spec.syncPolicy.managedNamespaceMetadata.
	NamespaceLabels      map[string]string `json:"namespace_labels,omitempty"`
	NamespaceAnnotations map[string]string `json:"namespace_annotations,omitempty"`
	// Retry is spec.syncPolicy.retry; nil: a failed sync is not retried.
	Retry *ArgoRetry `json:"retry,omitempty"`
	// IgnoreDifferences is spec.ignoreDifferences.
	IgnoreDifferences []IgnoreDifference `json:"ignore_differences,omitempty"`
}

// ArgoRetry is spec.syncPolicy.retry: after a failed sync, wait Backoff, then
// Backoff*Factor, ... at most MaxDuration, and sync again, up to Limit times.
type ArgoRetry struct {
	// Limit is how many retries follow a failed attempt; negative: no limit.
	Limit       int64         `json:"limit"`
	Backoff     time.Duration `json:"backoff"`
	Factor      int64         `json:"factor"`
	MaxDuration time.Duration `json:"max_duration"`
}

// Argo CD's retry back-off defaults.
const (
	ArgoRetryBackoff     = 5 * time.Second
	ArgoRetryFactor      = 2
	ArgoRetryMaxDuration = 3 * time.Minute
)

// IgnoreDifference is one entry of spec.ignoreDifferences: for the objects it selects
// (Group and Kind are globs, Name and Namespace exact when set), the fields to leave
// out of comparisons.
type IgnoreDifference struct {
	Group                 string   `json:"group,omitempty"`
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	JSONPointers          []string `json:"jsonPointers,omitempty"`
	JQPathExpressions     []string `json:"jqPathExpressions,omitempty"`
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// SyncOption names an Argo CD sync option.
type SyncOption string

// The sync options Argo CD documents.
const (
	OptPrune                       SyncOption = "Prune"
	OptPruneLast                   SyncOption = "PruneLast"
	OptPrunePropagationPolicy      SyncOption = "PrunePropagationPolicy"
	OptDelete                      SyncOption = "Delete"
	OptCreateNamespace             SyncOption = "CreateNamespace"
	OptServerSideApply             SyncOption = "ServerSideApply"
	OptClientSideApplyMigration    SyncOption = "ClientSideApplyMigration"
	OptReplace                     SyncOption = "Replace"
	OptForce                       SyncOption = "Force"
	OptApplyOutOfSyncOnly          SyncOption = "ApplyOutOfSyncOnly"
	OptValidate                    SyncOption = "Validate"
	OptSkipDryRunOnMissingResource SyncOption = "SkipDryRunOnMissingResource"
	OptRespectIgnoreDifferences    SyncOption = "RespectIgnoreDifferences"
	OptFailOnSharedResource        SyncOption = "FailOnSharedResource"
)

// syncOptionSpec is where Argo CD reads an option and the values it takes.
type syncOptionSpec struct {
	app, resource bool // spec.syncPolicy.syncOptions; the argocd.argoproj.io/sync-options annotation
	values        []string
}

var boolValues = []string{"true", "false"}

// syncOptionSpecs is read-only.
var syncOptionSpecs = map[SyncOption]syncOptionSpec{
	OptPrune:                       {app: true, resource: true, values: []string{"true", "false", "confirm"}},
	OptPruneLast:                   {app: true, resource: true, values: boolValues},
	OptPrunePropagationPolicy:      {app: true, values: []string{"foreground", "background", "orphan"}},
	OptDelete:                      {app: true, resource: true, values: []string{"true", "false", "confirm"}},
	OptCreateNamespace:             {app: true, values: boolValues},
	OptServerSideApply:             {app: true, resource: true, values: boolValues},
	OptClientSideApplyMigration:    {app: true, values: boolValues},
	OptReplace:                     {app: true, resource: true, values: boolValues},
	OptForce:                       {app: true, resource: true, values: boolValues},
	OptApplyOutOfSyncOnly:          {app: true, values: boolValues},
	OptValidate:                    {app: true, resource: true, values: boolValues},
	OptSkipDryRunOnMissingResource: {app: true, resource: true, values: boolValues},
	OptRespectIgnoreDifferences:    {app: true, values: boolValues},
	OptFailOnSharedResource:        {app: true, values: boolValues},
}

// ParseSyncOption splits "Name=value" and checks that Argo CD knows the option and the
// value, at the Application level (app) or in the argocd.argoproj.io/sync-options
// annotation of a resource.
func ParseSyncOption(s string, app bool) (SyncOption, string, error) {
	name, value, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return "", "", fmt.Errorf("sync option %q is not Name=value", s)
	}
	opt := SyncOption(name)
	spec, known := syncOptionSpecs[opt]
	switch {
	case !known:
		return "", "", fmt.Errorf("unknown sync option %q", name)
	case app && !spec.app:
		return "", "", fmt.Errorf("sync option %s is set on resources, not in spec.syncPolicy.syncOptions", name)
	case !app && !spec.resource:
		return "", "", fmt.Errorf("sync option %s is set in the Application's spec.syncPolicy.syncOptions, not on a resource", name)
	case !slices.Contains(spec.values, value):
		return "", "", fmt.Errorf("sync option %s=%s: want %s", name, value, strings.Join(spec.values, ", "))
	}
	return opt, value, nil
}

// SyncOptionNote says how loop treats an option that does not apply on a local
// cluster the way it does in Argo CD; "" when loop does what Argo CD does.
func SyncOptionNote(opt SyncOption, value string) string {
	switch {
	case opt == OptServerSideApply && value == "false":
		return "loop always applies server-side (as ServerSideApply=true); client-side apply is not used"
	case opt == OptClientSideApplyMigration:
		return "loop has always applied server-side as field manager \"loop\": there is no client-side apply to migrate"
	case opt == OptDelete && value == "confirm":
		return "loop never deletes this resource when the app is removed (it cannot ask for a confirmation); delete it yourself"
	case opt == OptPrune && value == "confirm":
		return "loop never prunes this resource (it cannot ask for a confirmation); it is reported as left over, delete it yourself"
	}
	return ""
}
