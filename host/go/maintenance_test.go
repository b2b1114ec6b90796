package credlock

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The maintenance calls the C ABI has always had reach Go too: import (every kind of file,
// detected or named), recover, quarantine and the pending logins.
func TestImportRecoverQuarantine(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir, nil)

	claude := []byte(`{"claudeAiOauth":{"accessToken":"at-claude","refreshToken":"rt","expiresAt":4102444800000}}`)
	r, err := s.ImportTokens(ctx, claude, "claude", nil)
	if err != nil || len(r.Imported) != 1 || r.Imported[0] != "claude" {
		t.Fatalf("import: %+v %v", r, err)
	}
	a, err := s.TokenInfo(ctx, "claude", 0)
	if err != nil || a.Token != "at-claude" || a.ExpiresAt.UnixMilli() != 4102444800000 {
		t.Fatalf("claude: %+v %v", a, err)
	}
	// A file not of the kind named is refused, naming the kind; nothing is stored.
	_, err = s.ImportTokens(ctx, []byte(`{"access_token":"a"}`), "x", &ImportOptions{Kind: "claude-code"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != "invalid-token-response" || !strings.Contains(ce.Message, "Claude Code") {
		t.Fatalf("wrong kind: %v", err)
	}
	// A map with an API key beside the tokens: the key is skipped, the file kept.
	src := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(src, []byte(`{"a":{"type":"oauth","access":"at-a","expires":4102444800000},"b":{"type":"api","key":"k"}}`), 0o600)
	r, err = s.ImportFile(ctx, src, "", true, nil)
	if err != nil || len(r.Imported) != 1 || len(r.Skipped) != 1 || r.Skipped[0].Tenant != "b" || r.SourceRemoved || r.KeptReason == nil {
		t.Fatalf("import file: %+v %v", r, err)
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatal("the source with a skipped entry was removed")
	}
	// Again without --replace: a conflict, nothing imported.
	_, err = s.ImportFile(ctx, src, "", false, nil)
	if !errors.As(err, &ce) || ce.Code != "import-conflict" {
		t.Fatalf("conflict: %v", err)
	}
	if p, err := s.PendingLogins(ctx); err != nil || len(p) != 0 {
		t.Fatalf("pending: %+v %v", p, err)
	}
	// A readable store is neither recovered nor quarantined unless forced.
	if _, err := s.Recover(ctx, false); !errors.As(err, &ce) || ce.Code != "recover" || ce.Case != "store-readable" {
		t.Fatalf("recover of a readable store: %v", err)
	}
	// Damage the store: recover restores the backup and moves the damaged file aside.
	sealed := filepath.Join(dir, "credentials.sealed")
	b, _ := os.ReadFile(sealed)
	b[len(b)-1] ^= 1
	os.WriteFile(sealed, b, 0o600)
	rec, err := s.Recover(ctx, false)
	if err != nil || rec.QuarantinedAs == nil || rec.Tenants == 0 {
		t.Fatalf("recover: %+v %v", rec, err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(*rec.QuarantinedAs))); err != nil {
		t.Fatalf("the damaged file is not kept as %s: %v", *rec.QuarantinedAs, err)
	}
	// Damage it again: quarantine moves it aside and names it.
	b, _ = os.ReadFile(sealed)
	b[len(b)-1] ^= 1
	os.WriteFile(sealed, b, 0o600)
	name, err := s.Quarantine(ctx, false)
	if err != nil || !strings.Contains(name, "corrupt") {
		t.Fatalf("quarantine: %q %v", name, err)
	}
	out, _ := json.Marshal(rec)
	if strings.Contains(string(out), "at-") {
		t.Fatal("a report holds a token")
	}
}
