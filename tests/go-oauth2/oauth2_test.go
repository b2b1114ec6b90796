// Package gooauth2 checks that tokens the real golang.org/x/oauth2 marshals, as the Go CLIs
// credlock serves persist them, keep their meaning in credlock: an `expiry` in the past is
// refreshed (once, against the real OAuth server) before anything is served, one in the
// future is served as it is, and Go's zero time means no expiry. Through the Go binding and
// through the CLI.
//
// Built in GOPATH mode against Debian's golang-golang-x-oauth2-dev (no Go module proxy is
// reachable here): host/go/run-tests.sh lays out the GOPATH and runs it.
package gooauth2

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"credlock.dev/credlock"
	"golang.org/x/oauth2"
)

// server is tests/oauth-server on 127.0.0.1, for one test.
type server struct{ base string }

func start(t *testing.T, accessTTLSeconds int) *server {
	t.Helper()
	urlFile := filepath.Join(t.TempDir(), "url")
	cmd := exec.Command("bash", filepath.Join(os.Getenv("CREDLOCK_ROOT"), "tests/oauth-server/start.sh"), urlFile)
	cmd.Env = append(os.Environ(), fmt.Sprintf("ACCESS_TTL_SECONDS=%d", accessTTLSeconds))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tests/oauth-server did not start: %v", err)
	}
	url, _ := os.ReadFile(urlFile)
	pidText, _ := os.ReadFile(urlFile + ".pid")
	var pid int
	if _, err := fmt.Sscan(string(pidText), &pid); err != nil || pid <= 0 {
		t.Fatalf("tests/oauth-server: no pid (%v)", err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGTERM) })
	return &server{base: strings.TrimSpace(string(url))}
}

var httpClient = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}

func (s *server) call(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	r, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	v := map[string]any{}
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil || r.StatusCode != 200 {
		t.Fatalf("%s %s: %d %v", method, path, r.StatusCode, err)
	}
	return v
}

// goToken marshals a fresh grant as Go's oauth2.Token with `expiry`, plus the refresh
// settings a program gives credlock.
func (s *server) goToken(t *testing.T, expiry time.Time) (*oauth2.Token, []byte) {
	g := s.call(t, "POST", "/test/grant", map[string]any{"client_id": "conf-basic", "account": "gopher", "scope": "openid offline_access api"})
	tok := &oauth2.Token{
		AccessToken:  g["access_token"].(string),
		TokenType:    "Bearer",
		RefreshToken: g["refresh_token"].(string),
		Expiry:       expiry,
	}
	raw, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"expiry":`)) {
		t.Fatalf("oauth2.Token marshalled without expiry: %s", raw)
	}
	doc := map[string]any{}
	json.Unmarshal(raw, &doc)
	doc["token_endpoint"] = s.base + "/token"
	doc["client_id"] = "conf-basic"
	doc["client_secret"] = "basic-secret"
	out, _ := json.Marshal(doc)
	return tok, out
}

func (s *server) refreshes(t *testing.T) (requests, duplicates float64) {
	st := s.call(t, "GET", "/test/stats", nil)
	r, ok1 := st["refresh_requests"].(float64)
	d, ok2 := st["duplicate_presentations"].(float64)
	if !ok1 || !ok2 {
		t.Fatalf("stats without refresh_requests or duplicate_presentations: %v", st)
	}
	return r, d
}

func (s *server) accepts(t *testing.T, access string) bool {
	req, _ := http.NewRequest("GET", s.base+"/resource", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	r, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return r.StatusCode == 200
}

// store is one way into a store: the Go binding, or the CLI.
type store interface {
	put(t *testing.T, tenant string, doc []byte)
	token(t *testing.T, tenant string) (token string, expiresAt time.Time)
}

type binding struct{ s *credlock.Store }

func (b binding) put(t *testing.T, tenant string, doc []byte) {
	if _, err := b.s.Put(context.Background(), tenant, doc); err != nil {
		t.Fatalf("put %s: %v", tenant, err)
	}
}

func (b binding) token(t *testing.T, tenant string) (string, time.Time) {
	a, err := b.s.TokenInfo(context.Background(), tenant, time.Minute)
	if err != nil {
		t.Fatalf("token %s: %v", tenant, err)
	}
	return a.Token, a.ExpiresAt
}

type cli struct{ dir string }

func (c cli) run(t *testing.T, stdin []byte, args ...string) []byte {
	cmd := exec.Command(os.Getenv("CREDLOCK_CLI"), append([]string{"--store", c.dir}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("credlock %v: %v: %s", args, err, stderr.String())
	}
	return out
}

func (c cli) put(t *testing.T, tenant string, doc []byte) { c.run(t, doc, "put", tenant) }

func (c cli) token(t *testing.T, tenant string) (string, time.Time) {
	var v struct {
		AccessToken string  `json:"access_token"`
		ExpiresAt   *string `json:"expires_at"`
	}
	if err := json.Unmarshal(c.run(t, nil, "token", tenant, "--json"), &v); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	if v.ExpiresAt != nil {
		at, _ = time.Parse(time.RFC3339, *v.ExpiresAt)
	}
	return v.AccessToken, at
}

func TestGoTokensKeepTheirExpiry(t *testing.T) {
	if os.Getenv("CREDLOCK_CLI") == "" || os.Getenv("CREDLOCK_ROOT") == "" {
		t.Fatal("CREDLOCK_CLI and CREDLOCK_ROOT must be set: run host/go/run-tests.sh")
	}
	srv := start(t, 3600)
	dir := t.TempDir()
	s, err := credlock.Open(filepath.Join(dir, "binding"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, way := range []struct {
		name  string
		store store
	}{{"binding", binding{s}}, {"cli", cli{filepath.Join(dir, "cli")}}} {
		t.Run(way.name, func(t *testing.T) {
			before, _ := srv.refreshes(t)
			// An hour ago, with fractional seconds and an offset, as Go writes it.
			pastTok, past := srv.goToken(t, time.Now().Add(-time.Hour).In(time.FixedZone("", 3600)))
			futureTok, future := srv.goToken(t, time.Now().Add(time.Hour).Truncate(time.Millisecond))
			zeroTok, zero := srv.goToken(t, time.Time{})
			way.store.put(t, "past", past)
			way.store.put(t, "future", future)
			way.store.put(t, "zero", zero)

			// The expired one is refreshed before it is served: once, at the server.
			got, exp := way.store.token(t, "past")
			if got == pastTok.AccessToken {
				t.Fatal("a token Go says expired an hour ago was served as valid")
			}
			if !srv.accepts(t, got) || time.Until(exp) < 30*time.Minute {
				t.Fatalf("the refreshed token: accepted %v, expires in %v", srv.accepts(t, got), time.Until(exp))
			}
			again, _ := way.store.token(t, "past")
			if again != got {
				t.Fatal("a second call refreshed again")
			}
			// The live one is served as it is, with Go's expiry to the second.
			got, exp = way.store.token(t, "future")
			if got != futureTok.AccessToken {
				t.Fatal("a token valid for an hour was refreshed")
			}
			if d := exp.Sub(futureTok.Expiry); d > time.Second || d < -time.Second {
				t.Fatalf("expiry %v, Go said %v", exp, futureTok.Expiry)
			}
			// Go's zero time: no expiry, served as it is.
			got, exp = way.store.token(t, "zero")
			if got != zeroTok.AccessToken || !exp.IsZero() {
				t.Fatalf("Go's zero expiry: served %v, expiry %v", got == zeroTok.AccessToken, exp)
			}
			after, duplicates := srv.refreshes(t)
			if after-before != 1 || duplicates != 0 {
				t.Fatalf("refreshes %v, duplicate presentations %v: want 1 and 0", after-before, duplicates)
			}
		})
	}
}
