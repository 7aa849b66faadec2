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
	pf := &podForward{dialer: dialer, failed: make(chan error, 1), locals: map[net.Conn]time.Time{}, conns: map[*podConn]bool{}}
	pc, err := pf.connection() // the pod can be reached: only then listen
	if err != nil {
		return err
	}
	pf.release(pc)
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
	conn   *podConn          // the one new streams go on; nil until made, or once retired
	conns  map[*podConn]bool // every connection not closed yet
	reqID  int
	locals map[net.Conn]time.Time // when each was accepted
	closed bool
}

// podConn is a connection to the pod and the streams being made or carried on
// it. A retired one takes no new streams and is closed once its last ends:
// closing it earlier would leave a stream being made waiting 30 s for a reply
// that cannot come (spdystream does not end pending stream starts on close).
type podConn struct {
	c       httpstream.Connection
	users   int
	retired bool
}

// connection returns the connection to the pod for one more stream, made again
// when it was retired or lost; release it after.
func (pf *podForward) connection() (*podConn, error) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	if pf.conn != nil {
		select {
		case <-pf.conn.c.CloseChan():
			pf.retireLocked(pf.conn)
		default:
			pf.conn.users++
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
	pf.conn = &podConn{c: conn, users: 1}
	pf.conns[pf.conn] = true
	return pf.conn, nil
}

// release ends one stream's use of pc.
func (pf *podForward) release(pc *podConn) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	pc.users--
	pf.closeIfDoneLocked(pc)
}

// retire stops new streams going on pc: the next local connection makes a new
// one. Callers hold pf.mu.
func (pf *podForward) retireLocked(pc *podConn) {
	if pf.conn == pc {
		pf.conn = nil
	}
	pc.retired = true
	pf.closeIfDoneLocked(pc)
}

func (pf *podForward) closeIfDoneLocked(pc *podConn) {
	if pc.retired && pc.users == 0 && pf.conns[pc] {
		delete(pf.conns, pc)
		_ = pc.c.Close()
	}
}

// drop retires pc (refused or broken).
func (pf *podForward) drop(pc *podConn) {
	pf.mu.Lock()
	defer pf.mu.Unlock()
	pf.retireLocked(pc)
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
		pc, err := pf.connection()
		if err != nil {
			select {
			case pf.failed <- err:
			default:
			}
			return
		}
		broken := pf.stream(pc, local, remote)
		if broken {
			pf.drop(pc)
		}
		pf.release(pc)
		if !broken {
			return
		}
	}
}

// stream carries local over one error and data stream pair of conn; it reports
// whether conn turned out broken (before any data went, the caller tries again).
// The pod refusing the connection is not: it ends local only.
func (pf *podForward) stream(pc *podConn, local net.Conn, remote string) (broken bool) {
	conn := pc.c
	pf.mu.Lock()
	pf.reqID++
	id := strconv.Itoa(pf.reqID)
	pf.mu.Unlock()
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, remote)
	h.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := pf.createStream(conn, h)
	if err != nil {
		return true
	}
	_ = errStream.Close() // nothing is written to it
	var complaint error   // the pod's complaint, or a failed read; set before read closes
	read := make(chan struct{})
	go func() { // owned by stream: it waits on read
		defer close(read)
		msg, err := io.ReadAll(errStream)
		if err == nil && len(msg) > 0 {
			err = errors.New(string(msg))
		}
		complaint = err
	}()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := pf.createStream(conn, h)
	if err != nil {
		_ = errStream.Reset()
		<-read // ends with the reset
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
	<-read
	conn.RemoveStreams(errStream, data)
	if complaint != nil {
		pf.drop(pc)
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
		// New local connections go on a new connection to the pod; the old one
		// closes once the streams to the stopped process have ended.
		if pf.conn != nil {
			pf.retireLocked(pf.conn)
		}
		pf.mu.Unlock()
	}
}

// streamReplyWait bounds the wait for the server to take a new stream. A
// connection on which the pod refused a stream while others were being made
// can leave those unanswered (spdystream then waits 30 s); the local
// connection is carried on a new connection instead.
const streamReplyWait = 2 * time.Second

var errNoReply = errors.New("the server did not take the stream")

// createStream makes a stream on conn, or gives up after streamReplyWait; a
// stream made after that is reset.
func (pf *podForward) createStream(conn httpstream.Connection, h http.Header) (httpstream.Stream, error) {
	type made struct {
		s   httpstream.Stream
		err error
	}
	var mu sync.Mutex
	abandoned := false
	ch := make(chan made, 1)
	pf.wg.Add(1)
	go func() { // owned by pf: ends with spdystream's own reply timeout at the latest; close waits
		defer pf.wg.Done()
		s, err := conn.CreateStream(h)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			if s != nil {
				_ = s.Reset()
			}
			return
		}
		ch <- made{s, err}
	}()
	timer := time.NewTimer(streamReplyWait)
	defer timer.Stop()
	select {
	case m := <-ch:
		return m.s, m.err
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case m := <-ch: // made just now
		return m.s, m.err
	default:
		abandoned = true
		return nil, errNoReply
	}
}

// close ends every local connection and the connections to the pod, and waits
// for the goroutines. The listeners are closed by holdForward.
func (pf *podForward) close() {
	pf.mu.Lock()
	pf.closed = true
	for c := range pf.locals {
		_ = c.Close()
	}
	// Connections close as their streams end: a stream still being made gets
	// its reply (and then sees its local connection closed).
	for pc := range pf.conns {
		pf.retireLocked(pc)
	}
	pf.mu.Unlock()
	pf.wg.Wait()
	pf.mu.Lock()
	for pc := range pf.conns {
		_ = pc.c.Close()
	}
	pf.conns = nil
	pf.mu.Unlock()
}
