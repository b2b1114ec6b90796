package gooauth2

// The adapter (credlock.dev/credlock/oauth2) under the real golang.org/x/oauth2 and
// net/http: many processes and goroutines through expiries must cost one refresh per expiry,
// never present a refresh token twice, and a 401 must cost one refresh, not one per goroutine.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"credlock.dev/credlock"
	credlockoauth2 "credlock.dev/credlock/oauth2"
	"golang.org/x/oauth2"
)

const (
	processes  = 8
	goroutines = 8
	stormTTL   = 2 // seconds: the OAuth server's access-token lifetime in the storm
)

// grantDoc is a fresh grant as `put` takes it; access replaces its access token if not "".
func (s *server) grantDoc(t *testing.T, access string, expiresIn int) []byte {
	g := s.call(t, "POST", "/test/grant", map[string]any{"client_id": "conf-basic", "account": "gopher", "scope": "openid offline_access api"})
	delete(g, "grant_id")
	if access != "" {
		g["access_token"] = access
	}
	g["expires_in"] = expiresIn
	g["token_endpoint"] = s.base + "/token"
	g["client_id"] = "conf-basic"
	g["client_secret"] = "basic-secret"
	b, _ := json.Marshal(g)
	return b
}

// openStore opens a new store for one test, closed when it ends.
func openStore(t *testing.T) *credlock.Store {
	s, err := credlock.Open(filepath.Join(t.TempDir(), "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type workerResult struct {
	Calls  int      `json:"calls"`
	Failed []string `json:"failed"`
}

// call GETs the resource through client, noting anything but 200.
func call(client *http.Client, url string, r *workerResult, mu *sync.Mutex) {
	resp, err := client.Get(url)
	mu.Lock()
	defer mu.Unlock()
	r.Calls++
	if err != nil {
		r.Failed = append(r.Failed, err.Error())
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		r.Failed = append(r.Failed, fmt.Sprintf("%d %s", resp.StatusCode, body))
	}
}

// TestAdapterWorker is one process of the storm, when run by TestAdapterStorm.
func TestAdapterWorker(t *testing.T) {
	store, url, goFile := os.Getenv("ADAPTER_STORE"), os.Getenv("ADAPTER_URL"), os.Getenv("ADAPTER_GO")
	if store == "" {
		return // not a worker: TestAdapterStorm runs this test in its processes
	}
	seconds, _ := strconv.ParseFloat(os.Getenv("ADAPTER_SECONDS"), 64)
	s, err := credlock.Open(store, &credlock.Options{LockTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := credlockoauth2.NewClient(context.Background(), s, "acme")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("GO never came")
		}
	}
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var r workerResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				call(client, url, &r, &mu)
				if !time.Now().Before(end) {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	out, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", out)
}

func TestAdapterStorm(t *testing.T) {
	srv := start(t, stormTTL)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := credlock.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "acme", srv.grantDoc(t, "", 0)); err != nil {
		t.Fatal(err)
	}
	// The grant's own token was dated by put; count from a refresh.
	if _, err := s.Token(ctx, "acme", time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Close()
	srv.call(t, "POST", "/test/reset", map[string]any{})
	goFile := filepath.Join(t.TempDir(), "GO")
	const seconds = 15.0
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < processes; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAdapterWorker$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ADAPTER_STORE="+dir, "ADAPTER_URL="+srv.base+"/resource",
			"ADAPTER_GO="+goFile, fmt.Sprintf("ADAPTER_SECONDS=%g", seconds))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	time.Sleep(time.Second)
	started := time.Now()
	os.WriteFile(goFile, nil, 0o600)
	calls := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, outs[i])
		}
		var r workerResult
		line := bytes.SplitN(bytes.SplitN(outs[i].Bytes(), []byte("RESULT "), 2)[1], []byte("\n"), 2)[0]
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, outs[i])
		}
		if len(r.Failed) != 0 {
			t.Fatalf("worker %d: %d of %d calls failed: %v", i, len(r.Failed), r.Calls, r.Failed[:1])
		}
		calls += r.Calls
	}
	elapsed := time.Since(started).Seconds()
	st := srv.call(t, "GET", "/test/stats", nil)
	counter := func(name string) float64 {
		v, ok := st[name].(float64)
		if !ok {
			t.Fatalf("stats without %s: %v", name, st)
		}
		return v
	}
	refreshes, dup, revoked, invalid := counter("refresh_requests"), counter("duplicate_presentations"), counter("grants_revoked"), counter("invalid_grant")
	t.Logf("go adapter: %d processes x %d goroutines, %d calls in %.1f s, all 200; %v refreshes, %v duplicate presentations, %v grants revoked",
		processes, goroutines, calls, elapsed, refreshes, dup, revoked)
	if dup != 0 || revoked != 0 || invalid != 0 {
		t.Fatalf("duplicates %v, revoked %v, invalid_grant %v", dup, revoked, invalid)
	}
	// credlock counts a 2 s token as 1 s (a second for the server's rounding) and refreshes
	// with half of that left: at most one refresh every 0.5 s across all 64 goroutines, plus
	// the one in flight at the end; never one per process or goroutine.
	if max := elapsed/(float64(stormTTL-1)/2) + 2; refreshes < 4 || refreshes > max {
		t.Fatalf("%v refreshes in %.1f s: want 4 to %.0f", refreshes, elapsed, max)
	}
}

func TestAdapterA401CostsOneRefresh(t *testing.T) {
	srv := start(t, 3600)
	s := openStore(t)
	ctx := context.Background()
	// A token the resource refuses while credlock deems it fresh for an hour.
	refused := "an-access-token-the-server-does-not-know"
	if _, err := s.Put(ctx, "acme", srv.grantDoc(t, refused, 3600)); err != nil {
		t.Fatal(err)
	}
	if srv.accepts(t, refused) {
		t.Fatal("the resource accepted an unknown token")
	}
	srv.call(t, "POST", "/test/reset", map[string]any{})
	client := credlockoauth2.NewClient(ctx, s, "acme")
	var r workerResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() { defer wg.Done(); call(client, srv.base+"/resource", &r, &mu) }()
	}
	wg.Wait()
	if len(r.Failed) != 0 {
		t.Fatalf("%v", r.Failed)
	}
	if n, _ := srv.refreshes(t); n != 1 {
		t.Fatalf("%v refreshes for one 401 met by %d goroutines", n, goroutines)
	}
}

func TestStoreTokenFeedsCredlock(t *testing.T) {
	srv := start(t, 3600)
	s := openStore(t)
	ctx := context.Background()
	// What Config.Exchange returns, already expired: the first use must refresh it with
	// the Config's endpoint and client.
	conf := &oauth2.Config{ClientID: "conf-basic", ClientSecret: "basic-secret",
		Endpoint: oauth2.Endpoint{TokenURL: srv.base + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, _ := srv.goToken(t, time.Now().Add(-time.Minute))
	if err := credlockoauth2.StoreToken(ctx, s, "acme", conf, tok); err != nil {
		t.Fatal(err)
	}
	got, err := credlockoauth2.NewTokenSource(s, "acme").Token()
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == tok.AccessToken || !got.Valid() || !srv.accepts(t, got.AccessToken) {
		t.Fatalf("not refreshed: same %v, valid %v", got.AccessToken == tok.AccessToken, got.Valid())
	}
	st := srv.call(t, "GET", "/test/stats", nil)
	if m, _ := st["by_auth_method"].(map[string]any); m["client_secret_basic"] == nil {
		t.Fatalf("the refresh did not authenticate as the Config says (basic): %v", st["by_auth_method"])
	}
}
