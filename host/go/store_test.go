package credlock

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, nil)
	r, err := s.Put(ctx, "acme", []byte(farToken))
	if err != nil || r.Revision != 1 {
		t.Fatalf("Put: %+v %v", r, err)
	}
	tok, err := s.Token(ctx, "acme", time.Minute)
	if err != nil || tok != "at-secret-1" {
		t.Fatalf("Token: %q %v", tok, err)
	}
	info, err := s.TokenInfo(ctx, "acme", 0)
	if err != nil || info.TokenType != "Bearer" || info.ExpiresAt.Unix() != 4102444800 || info.Refreshed || info.Revision != 1 {
		t.Fatalf("TokenInfo: %+v %v", info, err)
	}
	if _, err := s.Put(ctx, "beta", []byte(`{"access_token":"b","expires_in":3600}`)); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].Tenant != "acme" || list[1].Tenant != "beta" || list[1].ExpiresAtMs == nil {
		t.Fatalf("List: %+v %v", list, err)
	}
	st, err := s.Info(ctx)
	if err != nil || !st.Exists || st.Tenants != 2 || st.FormatVersion != 1 || len(st.SlotKinds) != 1 || st.SlotKinds[0] != "key-file" {
		t.Fatalf("Info: %+v %v", st, err)
	}
	slots, err := s.Slots(ctx)
	if err != nil || len(slots) != 1 || slots[0].Kind != "key-file" || !slots[0].Durable {
		t.Fatalf("Slots: %+v %v", slots, err)
	}
	if d, err := s.Delete(ctx, "beta"); !d || err != nil {
		t.Fatalf("Delete: %v %v", d, err)
	}
	if d, err := s.Delete(ctx, "beta"); d || err != nil {
		t.Fatalf("Delete again: %v %v", d, err)
	}
	// The Rust CLI sees what Go wrote.
	out, err := exec.Command(cliPath(t), "--store", dir, "token", "acme").Output()
	if err != nil || string(out) != "at-secret-1\n" {
		t.Fatalf("CLI token: %q %v", out, err)
	}
	s.Close()
	if _, err := s.Token(ctx, "acme", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	s.Close() // twice is fine
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, &Options{Passphrase: "right one", KDF: &KDFParams{8, 1, 1}})
	if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
		t.Fatal(err)
	}

	_, err := s.Token(ctx, "nobody", 0)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.ExitCode != 3 || e.Detail["tenant"] != "nobody" || e.Recommendation == "" {
		t.Fatalf("not found: %#v", err)
	}
	if errors.Is(err, ErrLockTimeout) || errors.Is(err, ErrUnreadable) {
		t.Fatal("not-found matched another sentinel")
	}

	_, err = s.Put(ctx, "acme", []byte(`{"no_access_token":1}`))
	if !errors.Is(err, ErrInvalidTokenResponse) || !errors.Is(err, ErrUsage) {
		t.Fatalf("invalid token response: %v", err)
	}

	wrong := openT(t, dir, &Options{Passphrase: "wrong one"})
	before, _ := os.ReadFile(filepath.Join(dir, "credentials.sealed"))
	_, err = wrong.Token(ctx, "acme", 0)
	if !errors.As(err, &e) || !errors.Is(err, ErrWrongPassphrase) || !errors.Is(err, ErrKey) || !errors.Is(err, ErrUnreadable) {
		t.Fatalf("wrong passphrase: %#v", err)
	}
	if e.Code != "key" || e.Case != "wrong-passphrase" || e.ExitCode != 6 {
		t.Fatalf("wrong passphrase fields: %+v", e)
	}
	if strings.Contains(e.Error(), "right one") || strings.Contains(e.Error(), "wrong one") {
		t.Fatalf("a passphrase in an error: %v", e)
	}
	if errors.Is(err, ErrWrongKeyFile) || errors.Is(err, ErrNotFound) {
		t.Fatal("matched the wrong sentinel")
	}
	if _, err := wrong.Put(ctx, "acme", []byte(`{"access_token":"x"}`)); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("put with the wrong passphrase: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "credentials.sealed"))
	if string(before) != string(after) {
		t.Fatal("a refused put changed the store")
	}

	// Settings errors come from the same resolver as the CLI's.
	_, err = Open(dir, &Options{Keyring: "gnome", IgnoreEnv: true})
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "unknown keyring") {
		t.Fatalf("bad keyring: %v", err)
	}
	if _, err := Open(dir, &Options{LockTimeout: -time.Second, IgnoreEnv: true}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("negative timeout: %v", err)
	}
}

func TestHostileTenantNames(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, nil)
	if _, err := s.Put(ctx, "ok", []byte(farToken)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../../etc/passwd", "a/b", "nul\x00byte", "new\nline", strings.Repeat("x", 129), "\xff\xfe", "$(rm -rf ~)", "ünïcödé"} {
		_, err := s.Put(ctx, name, []byte(farToken))
		var e *Error
		if !errors.As(err, &e) || e.Code != "invalid-tenant" || e.ExitCode != 2 {
			t.Fatalf("tenant %q: %#v", name, err)
		}
		if _, err := s.Token(ctx, name, 0); !errors.Is(err, ErrInvalidTenant) {
			t.Fatalf("token for %q: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "passwd") {
			t.Fatalf("a file named after a hostile tenant: %s", e.Name())
		}
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Fatalf("list: %+v", list)
	}
}

func TestRefreshRejectedWithoutEndpointIsReauth(t *testing.T) {
	ctx := context.Background()
	s := openT(t, filepath.Join(t.TempDir(), "store"), nil)
	s.Put(ctx, "acme", []byte(farToken))
	_, err := s.Refresh(ctx, "acme", Rejected("at-secret-1"))
	var e *Error
	if !errors.As(err, &e) || e.ExitCode != 4 || !errors.Is(err, ErrNeedsLogin) {
		t.Fatalf("refresh without a refresh token: %#v", err)
	}
}

// The shared vectors (tests/vectors), through the binding.
func TestVectors(t *testing.T) {
	// CREDLOCK_VECTORS: the vectors directory, for a run of these tests from the published
	// module (tests/release), outside the repository.
	dir := os.Getenv("CREDLOCK_VECTORS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "tests/vectors")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	sort.Strings(files)
	if len(files) < 10 {
		t.Fatalf("expected the shared vectors, found %d", len(files))
	}
	decode := func(v string) []byte {
		if strings.HasPrefix(v, "hex:") {
			b, err := hex.DecodeString(strings.TrimPrefix(v, "hex:"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if !strings.HasPrefix(v, "text:") {
			t.Fatalf("value %q is neither hex: nor text:", v)
		}
		return []byte(strings.TrimPrefix(v, "text:"))
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, _ := os.ReadFile(file)
			var v struct {
				Files   map[string]string `json:"files"`
				Keyring []struct {
					Backend string `json:"backend"`
					User    string `json:"user"`
					Secret  string `json:"secret"`
				} `json:"keyring"`
				Passphrase  *string          `json:"passphrase"`
				Steps       []map[string]any `json:"steps"`
				Unchanged   bool             `json:"unchanged"`
				AbsentAfter []string         `json:"absent_after"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "store")
			os.Mkdir(dir, 0o700)
			for f, c := range v.Files {
				os.WriteFile(filepath.Join(dir, f), decode(c), 0o600)
			}
			for _, k := range v.Keyring {
				if k.Backend != "keyutils" {
					t.Fatalf("%s: only kernel keyring entries can be installed here, not %s", name, k.Backend)
				}
				installKernelKeyringEntry(t, k.User, decode(k.Secret))
			}
			before, _ := os.ReadFile(filepath.Join(dir, "credentials.sealed"))
			o := &Options{}
			if v.Passphrase != nil {
				o.Passphrase = *v.Passphrase
			}
			s := openT(t, dir, o)
			ctx := context.Background()
			outcome := func(res any, err error) any {
				if err != nil {
					var e *Error
					if !errors.As(err, &e) || e.Code == "internal" {
						t.Fatalf("not a store error: %v", err)
					}
					return map[string]any{"error": e.Code}
				}
				return res
			}
			for i, step := range v.Steps {
				tenant, _ := step["tenant"].(string)
				var got any
				switch step["op"] {
				case "token":
					minValid := 60.0
					if m, ok := step["min_valid_s"].(float64); ok {
						minValid = m
					}
					tok, err := s.Token(ctx, tenant, time.Duration(minValid)*time.Second)
					got = outcome(map[string]any{"token": tok}, err)
				case "list":
					l, err := s.List(ctx)
					ts := []any{}
					for _, x := range l {
						ts = append(ts, map[string]any{"tenant": x.Tenant, "revision": float64(x.Revision)})
					}
					got = outcome(map[string]any{"tenants": ts}, err)
				case "put":
					body, _ := json.Marshal(step["response"])
					r, err := s.Put(ctx, tenant, body)
					got = outcome(map[string]any{"revision": float64(r.Revision)}, err)
				case "delete":
					d, err := s.Delete(ctx, tenant)
					got = outcome(map[string]any{"deleted": d}, err)
				case "attachment":
					v, ok, err := s.Attachment(ctx, tenant, step["name"].(string))
					var value any
					if ok {
						value = v
					}
					got = outcome(map[string]any{"value": value}, err)
				case "set-attachment":
					var value *string
					if v, ok := step["value"].(string); ok {
						value = &v
					}
					r, err := s.SetAttachment(ctx, tenant, step["name"].(string), value)
					got = outcome(map[string]any{"revision": float64(r.Revision)}, err)
				case "expires":
					l, err := s.List(ctx)
					if err != nil {
						t.Fatalf("step %d: list: %v", i, err)
					}
					got = map[string]any{"error": "not-found"}
					for _, x := range l {
						if x.Tenant == tenant {
							var ms any
							if x.ExpiresAtMs != nil {
								ms = float64(*x.ExpiresAtMs)
							}
							got = map[string]any{"expires_at_ms": ms}
						}
					}
				default:
					t.Fatalf("unknown op %v", step["op"])
				}
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(step["expect"])
				if string(g) != string(w) {
					t.Fatalf("step %d (%v): got %s, want %s", i, step["op"], g, w)
				}
			}
			if v.Unchanged {
				after, _ := os.ReadFile(filepath.Join(dir, "credentials.sealed"))
				if string(after) != string(before) {
					t.Fatal("the store changed")
				}
			}
			for _, f := range v.AbsentAfter {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					t.Fatalf("%s was created", f)
				}
			}
		})
	}
}

func TestCanceledContextReturnsPromptly(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, &Options{LockTimeout: 3 * time.Second})
	s.Put(ctx, "acme", []byte(farToken))
	h := holdLockFile(t, filepath.Join(dir, "credentials.lock"))
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	started := time.Now()
	_, err := s.Token(cctx, "acme", 0)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(started) > 1500*time.Millisecond {
		t.Fatalf("canceled: %v after %v", err, time.Since(started))
	}
	already, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := s.Token(already, "acme", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("already canceled: %v", err)
	}
	h.release()
	if tok, err := s.Token(ctx, "acme", 0); err != nil || tok != "at-secret-1" {
		t.Fatalf("after release: %q %v", tok, err)
	}
}

// installKernelKeyringEntry puts a vector's kernel keyring entry in place as the keyring-rs
// keyutils store keeps it (tests/vectors/README.md): a user key described
// keyring:<user>@credlock in the session keyring, linked into the persistent keyring. It
// is invalidated when the test ends.
func installKernelKeyringEntry(t *testing.T, user string, secret []byte) {
	if _, err := exec.LookPath("keyctl"); err != nil {
		t.Fatal("keyctl is not installed: scripts/setup.sh installs keyutils")
	}
	// One session for the whole script, so that it possesses both the new key and the
	// persistent keyring it links it into (as host/tests/keyrings.rs removes entries).
	script := `P=$(keyctl get_persistent @s) && K=$(keyctl padd user "keyring:$1@credlock" @s) && keyctl link "$K" "$P"`
	cmd := exec.Command("keyctl", "session", "-", "sh", "-c", script, "sh", user)
	cmd.Stdin = bytes.NewReader(secret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("could not install a kernel keyring entry (%v: %s)", err, out)
	}
	t.Cleanup(func() { kernelKeyringForget(t, user) })
}
