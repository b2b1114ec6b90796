package credlock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the credlock checkout this package sits in (host/go).
func repoRoot(t testing.TB) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// cliPath is the Rust CLI built beside the library (run-tests.sh builds it).
func cliPath(t testing.TB) string {
	p := filepath.Join(repoRoot(t), "target", "debug", "credlock")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the credlock CLI is not built (%v): run host/go/run-tests.sh or cargo build -p credlock", err)
	}
	return p
}

func openT(t testing.TB, dir string, o *Options) *Store {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	o.IgnoreEnv = true
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const farToken = `{"access_token":"at-secret-1","expires_at":4102444800,"token_type":"Bearer"}`

// The helper processes the tests start by re-running this test binary.
func TestMain(m *testing.M) {
	switch os.Getenv("CREDLOCK_GO_TEST_HELPER") {
	case "hold-lock":
		holdLock(os.Getenv("CREDLOCK_GO_TEST_LOCK"))
		return
	}
	os.Exit(m.Run())
}

// holdLock takes an exclusive flock on path, says "held", and keeps it until stdin closes
// or the process is ended.
func holdLock(path string) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("held")
	io.Copy(io.Discard, os.Stdin)
}

// lockHolder is another process holding a lock file exclusively.
type lockHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func holdLockFile(t *testing.T, path string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CREDLOCK_GO_TEST_HELPER=hold-lock", "CREDLOCK_GO_TEST_LOCK="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("lock holder said %q", line)
	}
	h := &lockHolder{cmd: cmd, stdin: stdin}
	t.Cleanup(h.release)
	return h
}

// release ends the holder (by its own pid) and so its lock.
func (h *lockHolder) release() {
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// oauthServer is tests/oauth-server, started for one test on 127.0.0.1.
type oauthServer struct {
	base string
	pid  int
}

func startOAuth(t *testing.T, accessTTL int) *oauthServer {
	t.Helper()
	dir := t.TempDir()
	portFile := filepath.Join(dir, "url")
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "tests/oauth-server/start.sh"), portFile)
	cmd.Env = append(os.Environ(), fmt.Sprintf("ACCESS_TTL_SECONDS=%d", accessTTL))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the OAuth test server did not start (needs node; scripts/setup.sh installs it): %v", err)
	}
	base, _ := os.ReadFile(portFile)
	pidText, _ := os.ReadFile(portFile + ".pid")
	var pid int
	fmt.Sscan(string(pidText), &pid)
	s := &oauthServer{base: strings.TrimSpace(string(base)), pid: pid}
	if !strings.HasPrefix(s.base, "http://127.0.0.1:") || pid == 0 {
		t.Fatalf("OAuth server: base %q pid %d", s.base, pid)
	}
	t.Cleanup(func() {
		// Only the process this test started, by its id.
		if p, err := os.FindProcess(s.pid); err == nil {
			p.Signal(syscall.SIGTERM)
		}
	})
	return s
}

var client = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}

func (s *oauthServer) postJSON(t testing.TB, path string, body any) map[string]any {
	b, _ := json.Marshal(body)
	r, err := client.Post(s.base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var v map[string]any
	json.NewDecoder(r.Body).Decode(&v)
	if r.StatusCode/100 != 2 {
		t.Fatalf("%s: %d %v", path, r.StatusCode, v)
	}
	return v
}

// grant mints a grant for conf-basic and returns a document for Put.
func (s *oauthServer) grant(t testing.TB) []byte {
	g := s.postJSON(t, "/test/grant", map[string]any{"client_id": "conf-basic", "account": "alice", "scope": "openid offline_access api"})
	delete(g, "grant_id")
	g["token_endpoint"] = s.base + "/token"
	g["client_id"] = "conf-basic"
	g["client_secret"] = "basic-secret"
	g["client_auth"] = "basic"
	b, _ := json.Marshal(g)
	return b
}

func (s *oauthServer) stats(t testing.TB) map[string]any {
	r, err := client.Get(s.base + "/test/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var v map[string]any
	json.NewDecoder(r.Body).Decode(&v)
	return v
}

// resource reports whether the protected resource accepts accessToken.
func (s *oauthServer) resource(t testing.TB, accessToken string) bool {
	req, _ := http.NewRequest("GET", s.base+"/resource", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	r, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r.StatusCode == 200
}
