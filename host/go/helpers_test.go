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

// serverStats is what GET /test/stats said. Reading a counter it does not have is a
// failure, never a zero: a renamed counter must not pass "== 0" checks.
type serverStats struct {
	t testing.TB
	m map[string]any
}

func (s *oauthServer) stats(t testing.TB) serverStats {
	r, err := client.Get(s.base + "/test/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		t.Fatalf("/test/stats: %v", err)
	}
	return serverStats{t, v}
}

// num is the counter k, which must be there and be a number.
func (st serverStats) num(k string) int {
	st.t.Helper()
	v, ok := st.m[k].(float64)
	if !ok {
		st.t.Fatalf("the server's stats have no number %q: %v", k, st.m)
	}
	return int(v)
}

func (st serverStats) String() string { return fmt.Sprint(st.m) }

// reset zeroes the server's counters and forgets which refresh tokens were presented.
func (s *oauthServer) reset(t testing.TB) {
	s.postJSON(t, "/test/reset", map[string]any{})
}

// use calls the protected resource with an access token credlock handed out, promising it
// valid for promised after it decided, which was after started. It returns "" when the
// resource accepted it, "late" when the resource refused it only because it expired and
// its expiry as the server issued it kept that promise (the use came late on a loaded
// machine), and otherwise what the server said: a revoked or unknown token, or one that
// expired before started+promised, is a broken promise however long the round trip took.
func (s *oauthServer) use(t testing.TB, accessToken string, started time.Time, promised time.Duration) string {
	req, _ := http.NewRequest("GET", s.base+"/resource", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	r, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode == 200 {
		return ""
	}
	body, _ := io.ReadAll(r.Body)
	var said struct {
		Reason      string `json:"reason"`
		ExpiresAtMs *int64 `json:"expires_at_ms"`
	}
	json.Unmarshal(body, &said)
	bound := started.UnixMilli() + promised.Milliseconds()
	if said.Reason == "expired" && said.ExpiresAtMs != nil && *said.ExpiresAtMs >= bound {
		return "late"
	}
	return fmt.Sprintf("%d %s: asked at %d ms, promised valid for %v after that", r.StatusCode, body, started.UnixMilli(), promised)
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
