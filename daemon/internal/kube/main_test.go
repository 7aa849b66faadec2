package kube

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

func TestMain(m *testing.M) {
	// client-go reports retries and closed exec streams through klog on stderr; as
	// cmd/loop does, the tests check what the calls return instead.
	klog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}
