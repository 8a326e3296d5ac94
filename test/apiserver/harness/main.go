// Command lvs-test-apiserver is lvs-operator's integration-test control plane:
// embedded etcd plus a real kube-apiserver (built from the k8s.io/kubernetes Go
// modules, RBAC on), fronted by a tiny TCP proxy that can cut or stall every
// client connection, and an HTTP control endpoint for fault injection.
//
// Process layout:
//
//	lvs-test-apiserver [run] --dir D --port P [flags] [-- extra kube-apiserver flags]
//	  supervisor: embedded etcd, TCP proxy on 127.0.0.1:P, control HTTP server,
//	  a namespace controller (so namespace deletion completes), and a child process:
//	lvs-test-apiserver serve-kube-apiserver-child <flags>
//	  kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app) on 127.0.0.1:<backend port>.
//
// Running kube-apiserver as a child lets /restart stop and start it on the same
// ports against the same etcd data (kube-apiserver keeps process-global state and
// installs its own signal handler, so it cannot be restarted in-process).
//
// Everything listens on 127.0.0.1 only. All state (PKI, tokens, etcd data,
// kubeconfigs, logs) lives under --dir and is reused when the supervisor is
// started again on the same dir. When ready, one JSON line {"event":"ready",...}
// is printed on stdout. SIGTERM/SIGINT (or stdin EOF with --exit-on-stdin-close)
// shuts everything down cleanly.
//
// Control endpoint (http://127.0.0.1:<control port>, printed in the ready line):
//
//	GET  /status               ports, pids, paths
//	POST /restart              stop + start kube-apiserver (same port, same etcd)
//	POST /apiserver/stop       stop kube-apiserver (proxy keeps accepting, then drops)
//	POST /apiserver/start      start it again and wait for /readyz
//	POST /proxy/cut[?rst=1]    close every client connection (RST with rst=1)
//	POST /proxy/pause          stop forwarding bytes (connections stay open: half-open TCP)
//	POST /proxy/resume         forward again
//	POST /compact[?bump=0]     write a dummy etcd key (unless bump=0), then compact etcd
//	                           at the head revision: every older resourceVersion is gone
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/component-base/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	namespacecontroller "k8s.io/kubernetes/pkg/controller/namespace"
)

// childCommand is argv[1] of the kube-apiserver child. Deliberately not "kube-apiserver",
// so that `pkill -f kube-apiserver` aimed at some other cluster on the host spares it.
const childCommand = "serve-kube-apiserver-child"

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(runKubeAPIServer(os.Args[2:]))
	}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	os.Exit(runSupervisor(args))
}

// runKubeAPIServer is the child mode: exactly the upstream kube-apiserver command.
func runKubeAPIServer(args []string) int {
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kube-apiserver:", err)
		return 1
	}
	return 0
}

// ---------------------------------------------------------------- options

type identity struct {
	Name   string   `json:"name"`
	User   string   `json:"user"`
	Groups []string `json:"groups"`
}

type identityList []identity

func (l *identityList) String() string { return fmt.Sprint(*l) }

// Set parses a JSON object {"name":..,"user":..,"groups":[..]} or NAME=USER[;GROUP,GROUP...]
// (user names such as system:node:lab1 contain colons, hence ";").
func (l *identityList) Set(v string) error {
	var id identity
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		if err := json.Unmarshal([]byte(v), &id); err != nil {
			return fmt.Errorf("identity %q: %w", v, err)
		}
	} else {
		name, rest, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("want NAME=USER[;GROUP,...] or JSON, got %q", v)
		}
		user, groups, _ := strings.Cut(rest, ";")
		id = identity{Name: name, User: user}
		if groups != "" {
			id.Groups = strings.Split(groups, ",")
		}
	}
	if id.Name == "" || id.User == "" || strings.ContainsAny(id.Name, "/ ") {
		return fmt.Errorf("identity %q: need a name (no slashes or spaces) and a user", v)
	}
	*l = append(*l, id)
	return nil
}

func saIdentity(name, ns, sa string) identity {
	return identity{
		Name:   name,
		User:   "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

var defaultIdentities = []identity{
	{Name: "admin", User: "lvs-test-admin", Groups: []string{"system:masters", "system:authenticated"}},
	saIdentity("controller", "lvs-system", "lvs-operator-controller"),
	saIdentity("agent", "lvs-system", "lvs-operator-agent"),
}

type options struct {
	dir              string
	port             int
	apiserverPort    int
	controlPort      int
	etcdClientPort   int
	etcdPeerPort     int
	watchCache       bool
	nsController     bool
	exitOnStdinClose bool
	removeDir        bool
	readyTimeout     time.Duration
	stopGrace        time.Duration
	verbosity        int
	identities       identityList
	extraArgs        []string
}

// state is persisted in <dir>/state.json so that a second start on the same dir
// (same etcd data) reuses the same ports.
type state struct {
	Port           int `json:"port"`
	APIServerPort  int `json:"apiserverPort"`
	EtcdClientPort int `json:"etcdClientPort"`
	EtcdPeerPort   int `json:"etcdPeerPort"`
}

// ---------------------------------------------------------------- supervisor

type supervisor struct {
	opts       options
	st         state
	pki        *pki
	tokens     map[string]string
	etcd       *embed.Etcd
	etcdCli    *clientv3.Client
	proxy      *proxy // public: what clients and kubeconfigs use; cut/pause apply here
	internal   *proxy // the namespace controller's path: cut on restart, never paused
	control    *http.Server
	controlURL string
	kubeconfig map[string]string
	logPath    string

	mu           sync.Mutex // serialises apiserver start/stop
	child        *childProc
	starts       int
	lastDone     time.Duration
	shuttingDown bool
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s harness: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(os.Stdout, string(b))
}

func runSupervisor(args []string) int {
	t0 := time.Now()
	var o options
	fs := flag.NewFlagSet("lvs-test-apiserver", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", "", "state dir (PKI, tokens, etcd data, kubeconfigs, logs); reused if it exists; default: a new temp dir")
	fs.IntVar(&o.port, "port", 0, "public port on 127.0.0.1 (the TCP proxy clients use); 0 = stored or free")
	fs.IntVar(&o.apiserverPort, "apiserver-port", 0, "kube-apiserver's own port on 127.0.0.1; 0 = stored or free")
	fs.IntVar(&o.controlPort, "control-port", 0, "control HTTP port on 127.0.0.1; 0 = free")
	fs.IntVar(&o.etcdClientPort, "etcd-client-port", 0, "etcd client port; 0 = stored or free")
	fs.IntVar(&o.etcdPeerPort, "etcd-peer-port", 0, "etcd peer port; 0 = stored or free")
	fs.BoolVar(&o.watchCache, "watch-cache", true, "kube-apiserver watch cache (with it off, /compact alone makes old resourceVersions 410)")
	fs.BoolVar(&o.nsController, "namespace-controller", true, "run the namespace controller so deleted namespaces are emptied and removed")
	fs.BoolVar(&o.exitOnStdinClose, "exit-on-stdin-close", false, "shut down when stdin reaches EOF (parent died)")
	fs.BoolVar(&o.removeDir, "remove-dir", false, "remove --dir on exit (a temp --dir is always removed)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 90*time.Second, "how long to wait for /readyz")
	fs.DurationVar(&o.stopGrace, "stop-grace", 10*time.Second, "how long kube-apiserver may take to exit after SIGTERM before SIGKILL")
	fs.IntVar(&o.verbosity, "v", 0, "kube-apiserver log verbosity")
	fs.Var(&o.identities, "identity", "extra identity NAME=USER[;GROUP,...] or JSON {name,user,groups} (repeatable); admin, controller and agent always exist")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.extraArgs = fs.Args()
	tempDir := false
	if o.dir == "" {
		d, err := os.MkdirTemp("", "lvs-test-apiserver-")
		if err != nil {
			logf("mkdtemp: %v", err)
			return 1
		}
		o.dir, tempDir = d, true
	}
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		logf("dir: %v", err)
		return 1
	}
	o.dir = abs
	s := &supervisor{opts: o, logPath: filepath.Join(o.dir, "apiserver.log")}
	code := 0
	if err := s.start(); err != nil {
		logf("start failed: %v", err)
		emit(map[string]any{"event": "failed", "error": err.Error(), "log": s.logPath})
		code = 1
	} else {
		emit(map[string]any{
			"event":       "ready",
			"url":         fmt.Sprintf("https://127.0.0.1:%d", s.st.Port),
			"directUrl":   fmt.Sprintf("https://127.0.0.1:%d", s.st.APIServerPort),
			"controlUrl":  s.controlURL,
			"etcdUrl":     fmt.Sprintf("http://127.0.0.1:%d", s.st.EtcdClientPort),
			"dir":         o.dir,
			"caFile":      filepath.Join(o.dir, "pki", "ca.crt"),
			"kubeconfigs": s.kubeconfig,
			"tokens":      s.tokens,
			"log":         s.logPath,
			"watchCache":  o.watchCache,
			"version":     kubernetesModuleVersion(),
			"gitVersion":  version.Get().GitVersion,
			"pid":         os.Getpid(),
			"startupMs":   time.Since(t0).Milliseconds(),
		})
		s.wait()
	}
	s.shutdown()
	if tempDir || o.removeDir {
		_ = os.RemoveAll(o.dir)
	}
	emit(map[string]any{"event": "stopped", "code": code})
	return code
}

func kubernetesModuleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/kubernetes" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func (s *supervisor) start() error {
	o := s.opts
	for _, d := range []string{o.dir, filepath.Join(o.dir, "pki")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := s.loadState(); err != nil {
		return err
	}
	var err error
	if s.pki, err = ensurePKI(filepath.Join(o.dir, "pki")); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ids := append(append([]identity{}, defaultIdentities...), o.identities...)
	if s.tokens, err = ensureTokens(o.dir, ids); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	s.kubeconfig = map[string]string{}
	for _, id := range ids {
		p := filepath.Join(o.dir, id.Name+".kubeconfig")
		if err := writeKubeconfig(p, fmt.Sprintf("https://127.0.0.1:%d", s.st.Port), s.pki.caPEM, id.Name, s.tokens[id.Name]); err != nil {
			return err
		}
		s.kubeconfig[id.Name] = p
	}

	if err := s.startEtcd(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	backend := fmt.Sprintf("127.0.0.1:%d", s.st.APIServerPort)
	if s.proxy, err = newProxy(fmt.Sprintf("127.0.0.1:%d", s.st.Port), backend); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	if s.internal, err = newProxy("127.0.0.1:0", backend); err != nil {
		return fmt.Errorf("internal proxy: %w", err)
	}
	if err := s.startControl(); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if err := s.startAPIServer(); err != nil {
		return err
	}
	if o.nsController {
		if err := s.startNamespaceController(); err != nil {
			return fmt.Errorf("namespace controller: %w", err)
		}
	}
	return nil
}

func (s *supervisor) loadState() error {
	p := filepath.Join(s.opts.dir, "state.json")
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &s.st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	pick := func(flagVal int, stored *int) error {
		switch {
		case flagVal != 0:
			*stored = flagVal
		case *stored == 0:
			p, err := freePort()
			if err != nil {
				return err
			}
			*stored = p
		}
		return nil
	}
	for _, x := range []struct {
		f int
		s *int
	}{{s.opts.port, &s.st.Port}, {s.opts.apiserverPort, &s.st.APIServerPort}, {s.opts.etcdClientPort, &s.st.EtcdClientPort}, {s.opts.etcdPeerPort, &s.st.EtcdPeerPort}} {
		if err := pick(x.f, x.s); err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(s.st, "", "  ")
	return os.WriteFile(p, b, 0o600)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ---------------------------------------------------------------- etcd

func (s *supervisor) startEtcd() error {
	cfg := embed.NewConfig()
	cfg.Name = "lvs-test"
	cfg.Dir = filepath.Join(s.opts.dir, "etcd")
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", s.st.EtcdClientPort)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", s.st.EtcdPeerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	// NewConfig leaves this 0 (only etcd's flag parsing sets the 300 ms default), and then every request is
	// "expensive": logged at warn with its content, tens of MB per benchmark run, CPU the API server's clients share.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.LogOutputs = []string{filepath.Join(s.opts.dir, "etcd.log")}
	cfg.UnsafeNoFsync = true // test data: durability across host crashes is not needed
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return err
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return errors.New("etcd did not become ready in 60s")
	}
	s.etcd = e
	s.etcdCli = v3client.New(e.Server)
	return nil
}

// compact makes every resourceVersion older than the etcd head revision expire.
func (s *supervisor) compact(ctx context.Context, bump bool) (int64, error) {
	var rev int64
	if bump {
		r, err := s.etcdCli.Put(ctx, "/lvs-test-harness/revision-bump", time.Now().UTC().Format(time.RFC3339Nano))
		if err != nil {
			return 0, err
		}
		rev = r.Header.Revision
	} else {
		r, err := s.etcdCli.Get(ctx, "/lvs-test-harness/revision-bump")
		if err != nil {
			return 0, err
		}
		rev = r.Header.Revision
	}
	if _, err := s.etcdCli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !strings.Contains(err.Error(), "already been compacted") {
		return 0, err
	}
	return rev, nil
}

// ---------------------------------------------------------------- kube-apiserver child

type childProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *supervisor) apiserverArgs() []string {
	d := s.opts.dir
	pk := filepath.Join(d, "pki")
	issuer := "https://kubernetes.default.svc.cluster.local"
	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(s.st.APIServerPort),
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", s.st.EtcdClientPort),
		"--cert-dir=" + filepath.Join(pk, "generated"),
		"--tls-cert-file=" + filepath.Join(pk, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(pk, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pk, "ca.crt"),
		"--token-auth-file=" + filepath.Join(d, "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + issuer,
		"--api-audiences=" + issuer,
		"--service-account-key-file=" + filepath.Join(pk, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pk, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		// No controller-manager creates "default" service accounts, so ServiceAccount
		// admission would reject every Pod.
		"--disable-admission-plugins=ServiceAccount",
		// The lease reconciler would try to publish 127.0.0.1 as the kubernetes
		// Service endpoint, which endpoint validation rejects (loopback).
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=" + strconv.Itoa(s.opts.verbosity),
	}
	if !s.opts.watchCache {
		args = append(args, "--watch-cache=false")
	}
	return append(args, s.opts.extraArgs...)
}

func (s *supervisor) startAPIServer() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startAPIServerLocked()
}

func (s *supervisor) startAPIServerLocked() error {
	if s.child != nil {
		return errors.New("kube-apiserver already running")
	}
	t0 := time.Now()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.starts++
	fmt.Fprintf(logFile, "==== lvs-test-apiserver: kube-apiserver start #%d at %s ====\n", s.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(self, append([]string{childCommand}, s.apiserverArgs()...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = s.opts.dir
	// Die with the supervisor even if it is SIGKILLed. Pdeathsig fires when the
	// *thread* that forked exits, so fork from a goroutine pinned to its thread
	// for the lifetime of the child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &childProc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(c.done)
			return
		}
		started <- nil
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return err
	}
	s.child = c
	logf("kube-apiserver pid %d starting on 127.0.0.1:%d", cmd.Process.Pid, s.st.APIServerPort)
	if err := s.waitReady(c); err != nil {
		s.stopAPIServerLocked()
		return fmt.Errorf("kube-apiserver not ready: %w (log: %s)", err, s.logPath)
	}
	s.lastDone = time.Since(t0)
	s.proxy.setBackendUp(true)
	s.internal.setBackendUp(true)
	logf("kube-apiserver ready after %s", s.lastDone.Round(time.Millisecond))
	go s.watchChild(c)
	return nil
}

// watchChild restarts kube-apiserver if it exits without being asked to (crash,
// or a stray signal from something else on the host).
func (s *supervisor) watchChild(c *childProc) {
	<-c.done
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		if s.child != c || s.shuttingDown {
			s.mu.Unlock()
			return
		}
		if attempt == 1 {
			logf("kube-apiserver exited unexpectedly: %v; restarting", c.err)
			emit(map[string]any{"event": "apiserver-exited", "error": fmt.Sprint(c.err)})
			s.proxy.setBackendUp(false)
			s.internal.setBackendUp(false)
			s.proxy.cutAll(false)
			s.internal.cutAll(false)
		}
		s.child = nil
		err := s.startAPIServerLocked()
		if err == nil {
			s.mu.Unlock()
			return
		}
		s.child = c // keep "unexpectedly dead" state for the next attempt
		s.mu.Unlock()
		logf("restart attempt %d failed: %v", attempt, err)
		if attempt >= 5 {
			s.mu.Lock()
			if s.child == c {
				s.child = nil
			}
			s.mu.Unlock()
			emit(map[string]any{"event": "apiserver-failed", "error": err.Error()})
			return
		}
		time.Sleep(time.Second)
	}
}

func (s *supervisor) httpClient(timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.pki.caPEM)
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
	}
}

func (s *supervisor) waitReady(c *childProc) error {
	cl := s.httpClient(3 * time.Second)
	deadline := time.Now().Add(s.opts.readyTimeout)
	u := fmt.Sprintf("https://127.0.0.1:%d/readyz", s.st.APIServerPort)
	last := "no response"
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("process exited: %v", c.err)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+s.tokens["admin"])
		resp, err := cl.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %s; last /readyz: %s", s.opts.readyTimeout, last)
}

func (s *supervisor) stopAPIServer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAPIServerLocked()
}

func (s *supervisor) stopAPIServerLocked() {
	c := s.child
	if c == nil {
		return
	}
	s.child = nil
	// Clients see what a restart looks like from outside: their connections drop
	// and new ones are refused until kube-apiserver is back. This also lets the
	// graceful shutdown finish at once: it would otherwise wait for open watches
	// up to its request timeout (60 s).
	s.proxy.setBackendUp(false)
	s.internal.setBackendUp(false)
	s.proxy.cutAll(false)
	s.internal.cutAll(false)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(s.opts.stopGrace):
		logf("kube-apiserver did not exit %s after SIGTERM; killing", s.opts.stopGrace)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	logf("kube-apiserver stopped (%v)", c.err)
}

// ---------------------------------------------------------------- namespace controller

func (s *supervisor) restConfig() *rest.Config {
	return &rest.Config{
		Host:            "https://" + s.internal.ln.Addr().String(),
		BearerToken:     s.tokens["admin"],
		TLSClientConfig: rest.TLSClientConfig{CAData: s.pki.caPEM},
		UserAgent:       "lvs-test-apiserver/namespace-controller",
		QPS:             50,
		Burst:           100,
	}
}

var nsCancel context.CancelFunc = func() {}

func (s *supervisor) startNamespaceController() error {
	cfg := s.restConfig()
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	nsCancel = cancel
	factory := informers.NewSharedInformerFactory(kc, 0)
	nc := namespacecontroller.NewNamespaceController(ctx, kc, mc, kc.Discovery().ServerPreferredNamespacedResources,
		factory.Core().V1().Namespaces(), 5*time.Minute, v1.FinalizerKubernetes)
	factory.Start(ctx.Done())
	go nc.Run(ctx, 4)
	return nil
}

// ---------------------------------------------------------------- control endpoint

func (s *supervisor) startControl() error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.opts.controlPort))
	if err != nil {
		return err
	}
	s.controlURL = "http://" + l.Addr().String()
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	post := func(path string, h func(r *http.Request) (any, error)) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				reply(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
				return
			}
			v, err := h(r)
			if err != nil {
				reply(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
				return
			}
			reply(w, http.StatusOK, v)
		})
	}
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		pid := 0
		if s.child != nil {
			pid = s.child.cmd.Process.Pid
		}
		st := map[string]any{"state": s.st, "apiserverPid": pid, "apiserverStarts": s.starts, "lastStartMs": s.lastDone.Milliseconds(),
			"proxy": s.proxy.stats(), "dir": s.opts.dir, "watchCache": s.opts.watchCache}
		s.mu.Unlock()
		reply(w, http.StatusOK, st)
	})
	post("/restart", func(r *http.Request) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		t0 := time.Now()
		s.stopAPIServerLocked()
		if err := s.startAPIServerLocked(); err != nil {
			return nil, err
		}
		return map[string]any{"restarted": true, "ms": time.Since(t0).Milliseconds(), "pid": s.child.cmd.Process.Pid}, nil
	})
	post("/apiserver/stop", func(r *http.Request) (any, error) {
		s.stopAPIServer()
		return map[string]any{"stopped": true}, nil
	})
	post("/apiserver/start", func(r *http.Request) (any, error) {
		t0 := time.Now()
		if err := s.startAPIServer(); err != nil {
			return nil, err
		}
		return map[string]any{"started": true, "ms": time.Since(t0).Milliseconds()}, nil
	})
	post("/proxy/cut", func(r *http.Request) (any, error) {
		rst := r.URL.Query().Get("rst") == "1" || r.URL.Query().Get("rst") == "true"
		return map[string]any{"closed": s.proxy.cutAll(rst)}, nil
	})
	post("/proxy/pause", func(r *http.Request) (any, error) {
		s.proxy.setPaused(true)
		return map[string]any{"paused": true}, nil
	})
	post("/proxy/resume", func(r *http.Request) (any, error) {
		s.proxy.setPaused(false)
		return map[string]any{"paused": false}, nil
	})
	post("/compact", func(r *http.Request) (any, error) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		rev, err := s.compact(ctx, r.URL.Query().Get("bump") != "0")
		if err != nil {
			return nil, err
		}
		return map[string]any{"revision": rev}, nil
	})
	s.control = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.control.Serve(l) }()
	return nil
}

// ---------------------------------------------------------------- lifecycle

func (s *supervisor) wait() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stdinEOF := make(chan struct{})
	if s.opts.exitOnStdinClose {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			close(stdinEOF)
		}()
	}
	select {
	case got := <-sig:
		logf("received %v, shutting down", got)
	case <-stdinEOF:
		logf("stdin closed, shutting down")
	}
	go func() {
		<-sig
		logf("second signal: exiting immediately")
		os.Exit(1)
	}()
}

func (s *supervisor) shutdown() {
	if s.control != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.control.Shutdown(ctx)
		cancel()
	}
	s.mu.Lock()
	s.shuttingDown = true
	s.mu.Unlock()
	nsCancel()
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.internal != nil {
		s.internal.close()
	}
	s.stopAPIServer()
	if s.etcd != nil {
		if s.etcdCli != nil {
			_ = s.etcdCli.Close()
		}
		s.etcd.Close()
		logf("etcd stopped")
	}
}

// ---------------------------------------------------------------- TCP proxy

type proxy struct {
	ln      net.Listener
	backend string

	mu       sync.Mutex
	conns    map[*pconn]struct{}
	paused   bool
	up       bool // backend accepting; when false new connections are dropped at once
	resumeCh chan struct{}
	accepted int64
	cut      int64
}

type pconn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (c *pconn) close(rst bool) {
	c.once.Do(func() {
		if rst {
			if tc, ok := c.client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		}
		_ = c.client.Close()
		if c.server != nil {
			_ = c.server.Close()
		}
		close(c.done)
	})
}

func newProxy(listen, backend string) (*proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, backend: backend, conns: map[*pconn]struct{}{}, resumeCh: make(chan struct{})}
	go p.serve()
	return p, nil
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(client net.Conn) {
	pc := &pconn{client: client, done: make(chan struct{})}
	p.mu.Lock()
	if !p.up {
		p.mu.Unlock()
		client.Close()
		return
	}
	p.conns[pc] = struct{}{}
	p.accepted++
	p.mu.Unlock()
	defer func() {
		pc.close(false)
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	server, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
	if err != nil {
		return // backend down (stopped/restarting): drop the client connection
	}
	p.mu.Lock()
	select {
	case <-pc.done: // cut while dialing
		p.mu.Unlock()
		server.Close()
		return
	default:
	}
	pc.server = server
	p.mu.Unlock()
	errc := make(chan struct{}, 2)
	go func() { p.pipe(pc, server, client); errc <- struct{}{} }()
	go func() { p.pipe(pc, client, server); errc <- struct{}{} }()
	select {
	case <-errc:
	case <-pc.done:
	}
}

func (p *proxy) pipe(pc *pconn, dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitUnpaused(pc) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) waitUnpaused(pc *pconn) bool {
	p.mu.Lock()
	paused, ch := p.paused, p.resumeCh
	p.mu.Unlock()
	if !paused {
		return true
	}
	select {
	case <-ch:
		return true
	case <-pc.done:
		return false
	}
}

func (p *proxy) setPaused(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == v {
		return
	}
	p.paused = v
	if !v {
		close(p.resumeCh)
		p.resumeCh = make(chan struct{})
	}
}

func (p *proxy) setBackendUp(v bool) {
	p.mu.Lock()
	p.up = v
	p.mu.Unlock()
}

func (p *proxy) cutAll(rst bool) int {
	p.mu.Lock()
	list := make([]*pconn, 0, len(p.conns))
	for c := range p.conns {
		list = append(list, c)
	}
	p.cut += int64(len(list))
	p.mu.Unlock()
	for _, c := range list {
		c.close(rst)
	}
	return len(list)
}

func (p *proxy) stats() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return map[string]any{"open": len(p.conns), "accepted": p.accepted, "cut": p.cut, "paused": p.paused, "backendUp": p.up, "backend": p.backend}
}

func (p *proxy) close() {
	p.setBackendUp(false)
	_ = p.ln.Close()
	p.setPaused(false)
	p.cutAll(false)
}

// ---------------------------------------------------------------- PKI, tokens, kubeconfigs

type pki struct {
	caPEM []byte
}

func ensurePKI(dir string) (*pki, error) {
	caCrt, caKeyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if b, err := os.ReadFile(caCrt); err == nil {
		for _, f := range []string{"ca.key", "apiserver.crt", "apiserver.key", "sa.key", "sa.pub"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				return nil, fmt.Errorf("incomplete PKI in %s: %w", dir, err)
			}
		}
		return &pki{caPEM: b}, nil
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "lvs-test-apiserver-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	files := map[string][]byte{
		"apiserver.crt": append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), caPEM...),
		"apiserver.key": ecKeyPEM(srvKey),
		"sa.key":        ecKeyPEM(saKey),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"ca.key":        ecKeyPEM(caKey),
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o600); err != nil {
			return nil, err
		}
	}
	_ = caKeyPath
	// ca.crt last: its presence marks a complete PKI.
	if err := os.WriteFile(caCrt, caPEM, 0o644); err != nil {
		return nil, err
	}
	return &pki{caPEM: caPEM}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func ecKeyPEM(k *ecdsa.PrivateKey) []byte {
	der, _ := x509.MarshalECPrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func ensureTokens(dir string, ids []identity) (map[string]string, error) {
	p := filepath.Join(dir, "tokens.json")
	tokens := map[string]string{}
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &tokens); err != nil {
			return nil, err
		}
	}
	var csv strings.Builder
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id.Name] {
			return nil, fmt.Errorf("duplicate identity %q", id.Name)
		}
		seen[id.Name] = true
		if tokens[id.Name] == "" {
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			tokens[id.Name] = hex.EncodeToString(b)
		}
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&csv, "%s,%s,%s,\"%s\"\n", tokens[id.Name], id.User, "lvs-test-"+id.Name, strings.Join(id.Groups, ","))
	}
	b, _ := json.MarshalIndent(tokens, "", "  ")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(csv.String()), 0o600); err != nil {
		return nil, err
	}
	return tokens, nil
}

func writeKubeconfig(path, server string, caPEM []byte, name, token string) error {
	ctx := "lvs-test-" + name
	y := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lvs-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: %s
  context:
    cluster: lvs-test
    user: %s
    namespace: default
current-context: %s
`, server, base64.StdEncoding.EncodeToString(caPEM), ctx, token, ctx, ctx, ctx)
	return os.WriteFile(path, []byte(y), 0o600)
}
