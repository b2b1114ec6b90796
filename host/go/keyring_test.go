package credlock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Key slots from Go against real keyrings, as host/tests/keyrings.rs does: gnome-keyring's
// Secret Service on a private D-Bus session bus started here, and the kernel keyring.

func needTools(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: scripts/setup.sh installs gnome-keyring, dbus, keyutils and libsecret-tools (a keyring test that cannot run fails)", tool)
		}
	}
}

type secretService struct {
	address, home string
}

func startSecretService(t *testing.T) *secretService {
	needTools(t, "dbus-daemon", "dbus-send", "gnome-keyring-daemon", "secret-tool")
	home := t.TempDir()
	run := filepath.Join(home, "run")
	os.Mkdir(run, 0o700)
	dbus := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1")
	out, _ := dbus.StdoutPipe()
	if err := dbus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbus.Process.Kill(); dbus.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	address := strings.TrimSpace(line)
	if !strings.HasPrefix(address, "unix:") {
		t.Fatalf("dbus-daemon said %q", line)
	}
	kr := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	kr.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+address, "HOME="+home, "XDG_RUNTIME_DIR="+run)
	stdin, _ := kr.StdinPipe()
	if err := kr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kr.Process.Kill(); kr.Wait() })
	stdin.Write([]byte("test-login-password"))
	stdin.Close()
	ss := &secretService{address: address, home: home}
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, _ := ss.tool("dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
			"/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets").Output()
		if strings.Contains(string(o), "boolean true") {
			return ss
		}
		if time.Now().After(deadline) {
			t.Fatal("the Secret Service did not appear on the bus")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (ss *secretService) tool(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+ss.address, "HOME="+ss.home, "XDG_RUNTIME_DIR="+filepath.Join(ss.home, "run"))
	return c
}

func kinds(t *testing.T, s *Store) []string {
	t.Helper()
	slots, err := s.Slots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var k []string
	for _, x := range slots {
		k = append(k, x.Kind)
	}
	return k
}

// runChild runs one test of this binary in a child process with extra environment (the
// keyring connection of a process follows its environment at first use). The child must
// pass: a skip there is a failure here.
func runChild(t *testing.T, test string, env ...string) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) || strings.Contains(string(out), "--- SKIP") {
		t.Fatalf("child %s: %v\n%s", test, err, out)
	}
}

// The Secret Service slot: a child process on the private bus opens a store by its keyring
// slot alone; after the keyring is wiped, a second child gets the error naming the slot
// that still opens it. With CREDLOCK_GO_TEST_PHASE set, this process is such a child.
func TestSecretServiceSlot(t *testing.T) {
	if phase := os.Getenv("CREDLOCK_GO_TEST_PHASE"); phase != "" {
		secretServiceSlotChild(t, os.Getenv("CREDLOCK_GO_TEST_DIR"), phase)
		return
	}
	ss := startSecretService(t)
	dir := filepath.Join(t.TempDir(), "store")
	runChild(t, "TestSecretServiceSlot", "DBUS_SESSION_BUS_ADDRESS="+ss.address,
		"CREDLOCK_GO_TEST_DIR="+dir, "CREDLOCK_GO_TEST_PHASE=open")
	if err := ss.tool("secret-tool", "clear", "service", "credlock").Run(); err != nil {
		t.Fatalf("wiping the keyring: %v", err)
	}
	runChild(t, "TestSecretServiceSlot", "DBUS_SESSION_BUS_ADDRESS="+ss.address,
		"CREDLOCK_GO_TEST_DIR="+dir, "CREDLOCK_GO_TEST_PHASE=wiped")
}

func secretServiceSlotChild(t *testing.T, dir, phase string) {
	if dir == "" {
		t.Fatal("CREDLOCK_GO_TEST_PHASE without CREDLOCK_GO_TEST_DIR")
	}
	ctx := context.Background()
	switch phase {
	case "open":
		s := openT(t, dir, &Options{Keyring: "secret-service"})
		if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
			t.Fatal(err)
		}
		if k := kinds(t, s); len(k) != 1 || k[0] != "keyring" {
			t.Fatalf("slots %v", k)
		}
		if _, err := os.Stat(filepath.Join(dir, "key")); err == nil {
			t.Fatal("a keyring store got a key file beside it")
		}
		s.Close()
		// Opened by the keyring slot alone: no keyring named, no passphrase, no key file.
		s = openT(t, dir, nil)
		if tok, err := s.Token(ctx, "acme", 0); err != nil || tok != "at-secret-1" {
			t.Fatalf("token by keyring slot: %q %v", tok, err)
		}
		if _, err := s.AddSlot(ctx, "passphrase", "correct horse"); err != nil {
			t.Fatal(err)
		}
		if k := kinds(t, s); strings.Join(k, ",") != "keyring,passphrase" {
			t.Fatalf("slots %v", k)
		}
	case "wiped":
		before, _ := os.ReadFile(filepath.Join(dir, "credentials.sealed"))
		s := openT(t, dir, nil)
		_, err := s.Token(ctx, "acme", 0)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrKeyringEntryMissing) || !errors.Is(err, ErrUnreadable) {
			t.Fatalf("wiped keyring: %#v", err)
		}
		if e.Case != "keyring-entry-missing" || fmt.Sprint(e.Detail["slot_kinds"]) != "[passphrase]" || !strings.Contains(e.Message, "passphrase") {
			t.Fatalf("the error does not name the other slots: %+v", e)
		}
		if _, err := s.Put(ctx, "acme", []byte(`{"access_token":"replacement"}`)); !errors.Is(err, ErrKeyringEntryMissing) {
			t.Fatalf("put after the wipe: %v", err)
		}
		after, _ := os.ReadFile(filepath.Join(dir, "credentials.sealed"))
		if string(before) != string(after) {
			t.Fatal("the store changed")
		}
		p := openT(t, dir, &Options{Passphrase: "correct horse"})
		if tok, err := p.Token(ctx, "acme", 0); err != nil || tok != "at-secret-1" {
			t.Fatalf("token by passphrase: %q %v", tok, err)
		}
	default:
		t.Fatal("unknown phase")
	}
}

func kernelKeyringForget(t *testing.T, entry string) {
	script := fmt.Sprintf(`P=$(keyctl get_persistent @s) && K=$(keyctl search "$P" user 'keyring:%s@credlock') && keyctl invalidate "$K"`, entry)
	if out, err := exec.Command("keyctl", "session", "-", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("could not remove the kernel keyring entry: %v %s", err, out)
	}
}

func TestKernelKeyringSlot(t *testing.T) {
	needTools(t, "keyctl")
	if err := exec.Command("keyctl", "get_persistent", "@s").Run(); err != nil {
		t.Fatalf("the kernel's persistent keyring is not available (keyctl get_persistent @s): %v", err)
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, &Options{Keyring: "keyutils", Passphrase: "pw", KDF: &KDFParams{8, 1, 1}})
	if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
		t.Fatal(err)
	}
	slots, err := s.Slots(ctx)
	if err != nil || len(slots) != 2 || slots[0].Kind != "passphrase" || slots[1].Kind != "kernel-keyring" || slots[1].Durable {
		t.Fatalf("slots %+v %v", slots, err)
	}
	// Opened by the kernel keyring slot alone.
	plain := openT(t, dir, nil)
	if tok, err := plain.Token(ctx, "acme", 0); err != nil || tok != "at-secret-1" {
		t.Fatalf("token by kernel keyring: %q %v", tok, err)
	}
	// describe is "keyutils/<entry> ...", as `credlock slot list` says.
	parts := strings.SplitN(slots[1].Describe, "/", 2)
	if len(parts) != 2 {
		t.Fatalf("describe %q", slots[1].Describe)
	}
	kernelKeyringForget(t, strings.Fields(parts[1])[0])
	fresh := openT(t, dir, nil)
	_, err = fresh.Token(ctx, "acme", 0)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrKeyringEntryMissing) || fmt.Sprint(e.Detail["slot_kinds"]) != "[passphrase]" {
		t.Fatalf("wiped kernel keyring: %#v", err)
	}
	if tok, err := s.Token(ctx, "acme", 0); err != nil || tok != "at-secret-1" {
		t.Fatalf("token by passphrase: %q %v", tok, err)
	}
}
