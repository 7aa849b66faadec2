package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/streaming/pkg/httpstream"
)

// A port forward speaks the kubelet's port-forward protocol (as kubectl does) over
// a connection to the API server, but unlike client-go's PortForwarder it survives
// a connection the pod refuses: that ends the one local connection, and the next
// one gets a new connection to the pod (the server leaves the refused one's
// unusable), while the listener stays. A process restarting in place
// (restart_container() under the agent's supervisor) refuses connections until it
// listens again; the first request after that is served, where client-go's
// forwarder had ended and had to be started again.

// holdForward listens on host for each "local:remote" port of ports and carries
// every accepted connection to the pod's remote port over dialer's connection,
// which it makes now and again when it is lost. It calls ready once listening. It
// returns nil when ctx ends, or an error when the pod cannot be reached (the
// connection cannot be made) or a port cannot be listened on.
func (d *Deployer) holdForward(ctx context.Context, pod string, dialer httpstream.Dialer, host string, ports []string, ready func()) error {
	type pair struct{ local, remote string }
	var pairs []pair
	for _, p := range ports {
		l, r, _ := strings.Cut(p, ":")
		pairs = append(pairs, pair{l, r})
	}
	pf := &podForward{dialer: dialer, failed: make(chan error, 1), locals: map[net.Conn]time.Time{}}
	if _, err := pf.connection(); err != nil {
		return err
	}
	defer pf.close()
	d.mu.Lock()
	if d.forwards[pod] == nil {
		d.forwards[pod] = map[*podForward]bool{}
	}
	d.forwards[pod][pf] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.forwards[pod], pf)
		if len(d.forwards[pod]) == 0 {
			delete(d.forwards, pod)
		}
		d.mu.Unlock()
	}()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	for _, p := range pairs {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p.local))
		if err != nil {
			return fmt.Errorf("listen on %s: %w", net.JoinHostPort(host, p.local), err)
		}
		lns = append(lns, ln)
	}
	ready()
	for i, ln := range lns {
		pf.wg.Add(1)
		go pf.accept(ln, pairs[i].remote) // owned by pf: ends when ln closes; close waits
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-pf.failed:
		return err
	}
}

// podForward is one held forward's connection to the pod and the local
// connections it carries.
type podForward struct {
	dialer httpstream.Dialer
	failed chan error // capacity 1: the first connection that could not be made
	wg     sync.WaitGroup

	mu     sync.Mutex
	conn   httpstream.Connection // nil until made, or after it was lost
	reqID  int
	locals map[net.Conn]time.Time // when each was accepted
	closed bool
}

// connection returns the connection to the pod, made again when it was lost.
func (pf *podForward) connection() (httpstream.Connection, error) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.conn != nil {
		select {
		case <-pf.conn.CloseChan():
			pf.conn = nil
		default:
			return pf.conn, nil
		}
	}
	conn, proto, err := pf.dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("connect to the pod: %w", err)
	}
	if proto != portforward.PortForwardProtocolV1Name {
		_ = conn.Close()
		return nil, fmt.Errorf("connect to the pod: the server speaks %q, not %q", proto, portforward.PortForwardProtocolV1Name)
	}
	pf.conn = conn
	return conn, nil
}

// drop forgets conn (broken): the next local connection makes a new one.
func (pf *podForward) drop(conn httpstream.Connection) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.conn == conn {
		_ = conn.Close()
		pf.conn = nil
	}
}

func (pf *podForward) accept(ln net.Listener, remote string) {
	defer pf.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !pf.track(c) {
			_ = c.Close()
			return
		}
		pf.wg.Add(1)
		go func() { // owned by pf: ends when either side does; close waits
			defer pf.wg.Done()
			defer pf.untrack(c)
			pf.carry(c, remote)
		}()
	}
}

func (pf *podForward) track(c net.Conn) bool {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.closed {
		return false
	}
	pf.locals[c] = time.Now()
	return true
}

func (pf *podForward) untrack(c net.Conn) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	delete(pf.locals, c)
	_ = c.Close()
}

// carry copies between the local connection and a new stream pair to the pod's
// port, once more on a new connection to the pod when the held one is lost.
func (pf *podForward) carry(local net.Conn, remote string) {
	for attempt := 0; attempt < 2; attempt++ {
		conn, err := pf.connection()
		if err != nil {
			select {
			case pf.failed <- err:
			default:
			}
			return
		}
		if broken := pf.stream(conn, local, remote); !broken {
			return
		}
		pf.drop(conn)
	}
}

// stream carries local over one error and data stream pair of conn; it reports
// whether conn turned out broken (before any data went, the caller tries again).
// The pod refusing the connection is not: it ends local only.
func (pf *podForward) stream(conn httpstream.Connection, local net.Conn, remote string) (broken bool) {
	pf.mu.Lock()
	pf.reqID++
	id := strconv.Itoa(pf.reqID)
	pf.mu.Unlock()
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, remote)
	h.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return true
	}
	_ = errStream.Close()       // nothing is written to it
	errc := make(chan error, 1) // the pod's complaint, or a failed read
	go func() {                 // owned by stream: it waits on errc
		msg, err := io.ReadAll(errStream)
		if err == nil && len(msg) > 0 {
			err = errors.New(string(msg))
		}
		errc <- err
	}()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.RemoveStreams(errStream)
		return true
	}
	remoteDone, localDone, localFailed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { // owned by stream: it waits on remoteDone
		defer close(remoteDone)
		_, _ = io.Copy(local, data)
	}()
	go func() { // owned by stream: ends at local's end, or once stream closes it; waited on below
		defer close(localDone)
		if _, err := io.Copy(data, local); err != nil {
			close(localFailed)
			return
		}
		_ = data.Close() // no more data from this side; the answer may still come
	}()
	select {
	case <-remoteDone:
	case <-localFailed:
	}
	_ = data.Reset()
	_ = local.Close()
	<-remoteDone
	<-localDone
	// The pod's complaint (connection refused while the process restarts) ends
	// this local connection; the next one gets a new connection to the pod, as
	// the server may leave this one unusable (as client-go's forwarder assumes).
	err = <-errc
	conn.RemoveStreams(errStream, data)
	if err != nil {
		pf.drop(conn)
	}
	return false
}

// cutForwards ends the connections the port forwards to pod ("namespace/name")
// accepted before t: they reached a process that a restart in place has since
// stopped. The kubelet's runtime keeps such a stream open for a second after the
// process's end (containerd waits for the client's side), so a request in flight
// would wait that long for its end; cut (with the connection to the pod they went
// through), the client sees it at once and asks again on a new one.
func (d *Deployer) cutForwards(pod string, t time.Time) {
	d.mu.Lock()
	var pfs []*podForward
	for pf := range d.forwards[pod] {
		pfs = append(pfs, pf)
	}
	d.mu.Unlock()
	for _, pf := range pfs {
		pf.mu.Lock()
		for c, at := range pf.locals {
			if at.Before(t) {
				_ = c.Close()
			}
		}
		// The streams to the stopped process end with their connection to the
		// pod; the next local connection makes a new one.
		if pf.conn != nil {
			_ = pf.conn.Close()
			pf.conn = nil
		}
		pf.mu.Unlock()
	}
}

// close ends the connection to the pod and every local connection, and waits
// for the goroutines. The listeners are closed by holdForward.
func (pf *podForward) close() {
	pf.mu.Lock()
	pf.closed = true
	if pf.conn != nil {
		_ = pf.conn.Close()
	}
	for c := range pf.locals {
		_ = c.Close()
	}
	pf.mu.Unlock()
	pf.wg.Wait()
}
