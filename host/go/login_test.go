package credlock

// Logging in through the Go package against the real OAuth server: the prompt reaches a Go
// callback through the C ABI (a cgo.Handle as the context pointer), the tokens are stored so
// that Token and Logout work. Guards the conversions; the flows are tested in Rust.

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestDeviceLoginPromptsStoresAndLogsOut(t *testing.T) {
	ctx := context.Background()
	srv := startOAuth(t, 60)
	s := openT(t, filepath.Join(t.TempDir(), "store"), nil)
	var prompts []LoginPrompt
	res, err := s.Login(ctx, "acme", LoginRequest{
		Issuer: srv.base, ClientID: "device-app", Scope: "openid offline_access api",
		OnPrompt: func(p LoginPrompt) {
			prompts = append(prompts, p)
			go srv.postJSON(t, "/test/device", map[string]any{"user_code": p.UserCode})
		},
	})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if len(prompts) != 1 || prompts[0].Kind != "device" || prompts[0].UserCode == "" || prompts[0].Joined {
		t.Fatalf("prompts: %+v", prompts)
	}
	if res.Joined || res.Token.Revision != 1 || !res.Refreshable {
		t.Fatalf("result: %+v", res)
	}
	tok, err := s.Token(ctx, "acme", time.Second)
	if err != nil || tok != res.Token.Token {
		t.Fatalf("Token after login: %v", err)
	}
	out, err := s.Logout(ctx, "acme", false)
	if err != nil || out.Revocation != "revoked" || !out.Deleted {
		t.Fatalf("Logout: %+v %v", out, err)
	}
	if _, err := s.Token(ctx, "acme", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Token after logout: %v", err)
	}
}
