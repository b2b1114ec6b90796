package credlock

/*
#cgo CFLAGS: -I${SRCDIR}/../capi/include
#include <stdlib.h>
#include "credlock.h"
// Defined in Go below (//export); a file with //export may only declare.
extern void credlockGoPrompt(char *prompt_json, void *context);
*/
import "C"

import (
	"context"
	"encoding/json"
	"runtime/cgo"
	"time"
	"unsafe"
)

// LoginRequest says how to log in. ClientID and either Issuer or the endpoints are required.
type LoginRequest struct {
	Issuer       string `json:"issuer,omitempty"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// Flow is "device" (the default, RFC 8628) or "browser" (authorization code + PKCE).
	Flow string `json:"flow,omitempty"`
	// NoOpen (browser flow) shows the URL through OnPrompt instead of opening a browser.
	NoOpen                      bool   `json:"-"`
	Audience                    string `json:"audience,omitempty"`
	Resource                    string `json:"resource,omitempty"`
	AuthorizationEndpoint       string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint               string `json:"token_endpoint,omitempty"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint,omitempty"`
	RevocationEndpoint          string `json:"revocation_endpoint,omitempty"`
	// OnPrompt shows the user what to do (nil: standard error). It runs on the goroutine
	// of the login's C call, while the login waits.
	OnPrompt func(LoginPrompt) `json:"-"`
}

// LoginPrompt is what the user must see to finish a login.
type LoginPrompt struct {
	Kind        string `json:"kind"` // "device" or "browser"
	URL         string `json:"url"`
	UserCode    string `json:"user_code"`
	URLComplete string `json:"url_complete"`
	ExpiresAtMs int64  `json:"expires_at_ms"`
	Joined      bool   `json:"joined"`
}

// LoginResult is the tenant's tokens as the login stored them.
type LoginResult struct {
	Token  *AccessToken
	Joined bool // another process ran the flow and this one joined it
	// Refreshable: the stored tokens include a refresh token (a login that asked for
	// offline_access and got none can only be repeated when the token expires).
	Refreshable bool
}

// LogoutReport says what Logout did at the server and locally.
type LogoutReport struct {
	Revocation      string `json:"revocation"` // "revoked", "not-offered" or "failed" (with local)
	RevocationError string `json:"revocation_error"`
	Deleted         bool   `json:"deleted"`
}

//export credlockGoPrompt
func credlockGoPrompt(promptJSON *C.char, ctx unsafe.Pointer) {
	var p LoginPrompt
	if json.Unmarshal([]byte(C.GoString(promptJSON)), &p) != nil {
		return
	}
	// ctx points to the C copy of the handle Login made (see there).
	h := cgo.Handle(*(*C.uintptr_t)(ctx))
	if f, ok := h.Value().(func(LoginPrompt)); ok {
		f(p)
	}
}

// Login logs tenant in at an OAuth server and stores the tokens as Put would; a login
// already in progress for tenant (another process or goroutine) is joined. It blocks until
// the user finishes or the code expires; a canceled ctx returns at once while the login
// finishes in the background.
func (s *Store) Login(ctx context.Context, tenant string, req LoginRequest) (*LoginResult, error) {
	body := struct {
		LoginRequest
		OpenBrowser bool `json:"open_browser"`
	}{req, !req.NoOpen}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	if err := nulError("tenant", tenant, "request", string(b)); err != nil {
		return nil, err
	}
	ct, cr := cString(tenant), cString(string(b))
	out, err := s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		if req.OnPrompt == nil {
			return C.credlock_login(h, ct, cr, nil, nil, r, e)
		}
		// The callback travels as a cgo.Handle in C memory (the context pointer), so no Go
		// pointer is handed to C; credlockGoPrompt reads it back. Made here, so that it
		// exists exactly while the C call runs (which may outlive a canceled ctx).
		handle := cgo.NewHandle(req.OnPrompt)
		cctx := C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
		*(*C.uintptr_t)(cctx) = C.uintptr_t(handle)
		defer func() {
			handle.Delete()
			C.free(cctx)
		}()
		return C.credlock_login(h, ct, cr, C.credlock_prompt_fn(C.credlockGoPrompt), cctx, r, e)
	}, ct, cr)
	return loginResult(out, err)
}

func loginResult(out []byte, err error) (*LoginResult, error) {
	res, err := decode[struct {
		Token       tokenJSON `json:"token"`
		Joined      bool      `json:"joined"`
		Refreshable bool      `json:"refreshable"`
	}](out, err)
	for i := range out {
		out[i] = 0
	}
	if err != nil {
		return nil, err
	}
	t := &AccessToken{Token: res.Token.Token, TokenType: res.Token.TokenType, Revision: res.Token.Revision}
	if res.Token.ExpiresAtMs != nil {
		t.ExpiresAt = time.UnixMilli(int64(*res.Token.ExpiresAtMs))
	}
	return &LoginResult{Token: t, Joined: res.Joined, Refreshable: res.Refreshable}, nil
}

// Logout revokes the tenant's refresh token where the server offers revocation (RFC 7009),
// then deletes the tenant; a failed revocation deletes nothing unless local.
func (s *Store) Logout(ctx context.Context, tenant string, local bool) (*LogoutReport, error) {
	if err := nulError("tenant", tenant); err != nil {
		return nil, err
	}
	ct := cString(tenant)
	r, err := decode[LogoutReport](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_logout(h, ct, C.bool(local), r, e)
	}, ct))
	if err != nil {
		return nil, err
	}
	return &r, nil
}
