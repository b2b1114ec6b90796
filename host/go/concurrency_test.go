package credlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A lock timeout inside a Go process: the store lock held by another process, many
// goroutines waiting at once; each gets ErrLockTimeout after about the timeout, naming the
// lock, and the process keeps working once the lock is free.
func TestLockTimeoutInGoProcess(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	const timeout = time.Second
	s := openT(t, dir, &Options{LockTimeout: timeout})
	if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
		t.Fatal(err)
	}
	h := holdLockFile(t, filepath.Join(dir, "credentials.lock"))
	const waiters = 12
	var wg sync.WaitGroup
	errs := make([]error, waiters)
	took := make([]time.Duration, waiters)
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			started := time.Now()
			if i%2 == 0 {
				_, errs[i] = s.Token(ctx, "acme", 0)
			} else {
				_, errs[i] = s.Put(ctx, fmt.Sprintf("w%d", i), []byte(farToken))
			}
			took[i] = time.Since(started)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		var e *Error
		if !errors.Is(err, ErrLockTimeout) || !errors.As(err, &e) || e.ExitCode != 5 {
			t.Fatalf("waiter %d: %v", i, err)
		}
		if e.Detail["lock"] == nil || e.Detail["waited_ms"] == nil {
			t.Fatalf("the error names no lock: %+v", e.Detail)
		}
		if took[i] < timeout-50*time.Millisecond || took[i] > timeout+3*time.Second {
			t.Fatalf("waiter %d took %v for a %v timeout", i, took[i], timeout)
		}
	}
	sig, owner := wakeSignal()
	wantOwner := 2 // the library's handler, installed by its first lock wait
	if os.Getenv("CREDLOCK_GO_KEEP_WAKE_SIGNAL") != "" {
		wantOwner = 1 // left to the Go runtime: the library waited in helper threads
	}
	if owner != wantOwner {
		t.Fatalf("signal %d: owner %d, want %d", sig, owner, wantOwner)
	}
	t.Logf("lock wake signal %d, owner %d (2: the library's handler)", sig, owner)

	// A waiter that gets the lock when it is released: handed over, not timed out.
	s2 := openT(t, dir, &Options{LockTimeout: 10 * time.Second})
	got := make(chan error, 1)
	go func() { _, err := s2.Put(ctx, "late", []byte(farToken)); got <- err }()
	time.Sleep(300 * time.Millisecond)
	released := time.Now()
	h.release()
	if err := <-got; err != nil {
		t.Fatalf("waiter after release: %v", err)
	}
	if d := time.Since(released); d > 2*time.Second {
		t.Fatalf("hand-over took %v", d)
	}
	if tok, err := s.Token(ctx, "acme", 0); err != nil || tok != "at-secret-1" {
		t.Fatalf("after the timeouts: %q %v", tok, err)
	}
}

// The same with the signal left to the Go runtime: the library falls back to waiting in a
// helper thread, with the same outcome.
func TestLockTimeoutWithSignalLeftToGo(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockTimeoutInGoProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CREDLOCK_GO_KEEP_WAKE_SIGNAL=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLockTimeoutInGoProcess") {
		t.Fatalf("child run: %v\n%s", err, out)
	}
}

// 16 goroutines sharing one *Store and two Rust CLI processes on one store, against the real
// OAuth server: every acknowledged put is there, one refresh per expiry, no refresh token
// presented twice, and every token handed out is accepted by the resource server.
func TestGoroutinesAndProcessesOnOneStoreWithRealOAuth(t *testing.T) {
	const (
		accessTTL  = 3
		seconds    = 9
		goroutines = 16
		minValid   = 500 * time.Millisecond
		// What credlock promises of a token: minValid, capped at half the lifetime it
		// dates (the TTL less a second of granularity), which is more here.
		promised = minValid
	)
	ctx := context.Background()
	server := startOAuth(t, accessTTL)
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, &Options{LockTimeout: 20 * time.Second})
	if _, err := s.Put(ctx, "shared", server.grant(t)); err != nil {
		t.Fatal(err)
	}
	// The grant's first token was issued before Put dated it: refresh once, so that every
	// token used below is one credlock dated from its own request, then count from zero.
	if _, err := s.Refresh(ctx, "shared"); err != nil {
		t.Fatal(err)
	}
	server.reset(t)
	cli := cliPath(t)
	deadline := time.Now().Add(seconds * time.Second)

	// Two CLI processes: each loops token + put, printing the tenants it was told are stored.
	type cliRun struct {
		cmd      *exec.Cmd
		out, err *strings.Builder
	}
	var clis []cliRun
	for k := 0; k < 2; k++ {
		script := fmt.Sprintf(`end=$((SECONDS + %d)); n=0
while [ $SECONDS -lt $end ]; do
  n=$((n+1))
  "$CLI" token shared --min-valid 1 >/dev/null || { echo "token failed" >&2; exit 1; }
  printf '{"access_token":"cli%d-%%d","expires_in":3600}' $n | "$CLI" put cli%d-$n >/dev/null || { echo "put failed" >&2; exit 1; }
  echo cli%d-$n
done`, seconds, k, k, k)
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), "CLI="+cli, "CREDLOCK_STORE="+dir, "CREDLOCK_LOCK_TIMEOUT=20", "CREDLOCK_KEYRING=off")
		out, stderr := &strings.Builder{}, &strings.Builder{}
		cmd.Stdout = out
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		clis = append(clis, cliRun{cmd, out, stderr})
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	tokens := map[string]bool{}
	var wg sync.WaitGroup
	failures := make(chan error, goroutines)
	calls, late := 0, 0
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				started := time.Now()
				tok, err := s.Token(ctx, "shared", minValid)
				if err != nil {
					failures <- fmt.Errorf("goroutine %d token: %w", g, err)
					return
				}
				// Every refusal counts, judged by the token's own expiry at the server,
				// never by how long this round trip took.
				switch said := server.use(t, tok, started, promised); said {
				case "":
				case "late":
					mu.Lock()
					late++
					mu.Unlock()
				default:
					failures <- fmt.Errorf("goroutine %d: the resource refused a token credlock handed out: %s", g, said)
					return
				}
				name := fmt.Sprintf("g%02d-%d", g, n)
				if _, err := s.Put(ctx, name, []byte(`{"access_token":"`+name+`","expires_in":3600}`)); err != nil {
					failures <- fmt.Errorf("goroutine %d put: %w", g, err)
					return
				}
				mu.Lock()
				acked[name] = true
				tokens[tok] = true
				calls++
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	for _, c := range clis {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("a CLI process failed: %v\n%s", err, c.err.String())
		}
		for _, name := range strings.Fields(c.out.String()) {
			acked[name] = true
		}
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, x := range list {
		present[x.Tenant] = true
	}
	missing := 0
	for name := range acked {
		if !present[name] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged puts are missing", missing, len(acked))
	}
	st := server.stats(t)
	if st.num("invalid_grant") != 0 || st.num("duplicate_presentations") != 0 || st.num("grants_revoked") != 0 {
		t.Fatalf("a refresh token was presented twice or refused: %v", st)
	}
	refreshes := st.num("refresh_requests")
	// As host/tests/storm.rs: each token serves at least (TTL - 1 s granularity) / 2, and
	// there is at least one refresh per real TTL.
	most := seconds*1000/((accessTTL*1000-1000)/2) + 2
	least := seconds / accessTTL
	if refreshes < least || refreshes > most {
		t.Fatalf("%d refreshes in %d s with a %d s TTL (bounds %d..%d)", refreshes, seconds, accessTTL, least, most)
	}
	t.Logf("figures: %d goroutines + 2 CLI processes, %d Go token+put rounds, %d acknowledged puts, %d refreshes (bounds %d..%d), %d distinct access tokens seen, %d used late",
		goroutines, calls, len(acked), refreshes, least, most, len(tokens), late)

	// Refresh with the rejected-token option: the current token refreshes; the old one no longer does.
	cur, err := s.TokenInfo(ctx, "shared", 0)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := s.Refresh(ctx, "shared", Rejected(cur.Token))
	if err != nil || !fresh.Refreshed || fresh.Token == cur.Token {
		t.Fatalf("refresh of a rejected token: %+v %v", fresh, err)
	}
	again, err := s.Refresh(ctx, "shared", Rejected(cur.Token))
	if err != nil || again.Refreshed || again.Token != fresh.Token {
		t.Fatalf("a stale rejection refreshed again: %+v %v", again, err)
	}
	if !server.resource(t, again.Token) {
		t.Fatal("the refreshed token is refused")
	}
}
