// Package credlock embeds credlock, a multi-process-safe OAuth credential store, in Go
// programs through its C ABI (host/capi, libcredlock). The logic, the messages and the
// rules are the one Rust implementation's; this package converts types, maps errors to
// Go's idiom, and keeps a canceled context from waiting.
//
// A *Store is safe for use by many goroutines at once. Calls on one store exclude each
// other through the store's file locks, exactly as separate processes do, so goroutines,
// other Go processes, the credlock CLI and the Python and Node hosts all share one store.
package credlock

/*
#include <stdlib.h>
#include <string.h>
#include "credlock.h"

// Zero and free a C string in one cgo call (three before: strlen, memset, free).
static void credlock_go_free_secret(char *p) {
	if (p != NULL) {
		memset(p, 0, strlen(p));
		free(p);
	}
}
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Options configure Open. The zero value of a field means "as the credlock CLI would":
// from the CREDLOCK_* environment variable, else the default.
//
// Each field's `credlock` tag is its name in the settings object the host reads
// (credlock::OpenOptions, the one declaration every binding shares; host/tests/parity.rs
// checks these tags against it): a new setting is a tagged field here, nothing else in Go.
// A Duration goes as seconds.
type Options struct {
	// Passphrase opens (or protects a new store with) a passphrase slot.
	// Default: $CREDLOCK_PASSPHRASE.
	Passphrase string `credlock:"passphrase"`
	// KeyFile is the key file. Default: $CREDLOCK_KEY_FILE, else DIR/key.
	KeyFile string `credlock:"key_file"`
	// Keyring: "secret-service", "keyutils", "apple-keychain", "windows-credential",
	// "auto", or "off" to never ask a keyring. Default: $CREDLOCK_KEYRING.
	Keyring string `credlock:"keyring"`
	// LockTimeout bounds every lock wait (default $CREDLOCK_LOCK_TIMEOUT or 10 s). Below a
	// millisecond (but not zero) it means "do not wait".
	LockTimeout time.Duration `credlock:"lock_timeout"`
	// HTTPTimeout bounds a token-endpoint request (default $CREDLOCK_HTTP_TIMEOUT or 30 s).
	HTTPTimeout time.Duration `credlock:"http_timeout"`
	// KeyringTimeout bounds one keyring call (default $CREDLOCK_KEYRING_TIMEOUT or 10 s).
	KeyringTimeout time.Duration `credlock:"keyring_timeout"`
	// AllowInsecureHTTP permits plain http to non-loopback token endpoints.
	AllowInsecureHTTP bool `credlock:"allow_insecure_http"`
	// AllowVolatileOnly lets a store's only slot be the kernel keyring.
	AllowVolatileOnly bool `credlock:"allow_volatile_only"`
	// NewPassphrase is the passphrase of a new passphrase slot (AddSlot).
	NewPassphrase string `credlock:"new_passphrase"`
	// KDF sets argon2id parameters for a new passphrase slot (tests use small ones).
	KDF *KDFParams `credlock:"kdf"`
	// IgnoreEnv reads no CREDLOCK_* variable: everything is configured here.
	IgnoreEnv bool `credlock:"ignore_env"`
}

// KDFParams are argon2id parameters.
type KDFParams struct {
	MemoryKiB   uint32 `json:"m_cost_kib"`
	Iterations  uint32 `json:"t_cost"`
	Parallelism uint32 `json:"p_cost"`
}

// Store is an open credential store. Close it when done; a Store that becomes unreachable
// is closed by a finalizer.
type Store struct {
	mu     sync.RWMutex // held shared by calls, exclusively by Close
	handle *C.credlock_store
}

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("credlock: the store is closed")

// cString copies s into C memory; free it with freeSecret, which zeroes it first.
func cString(s string) *C.char {
	return C.CString(s)
}

// nulError is the library's report for the first argument holding a NUL byte, which a C
// string cannot carry (C.CString would silently cut it there). Its arguments are pairs:
// name, value, name, value... (a variadic slice, not a map: no allocation on every call).
func nulError(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, v := pairs[i], pairs[i+1]
		if strings.IndexByte(v, 0) >= 0 {
			cname := C.CString(name)
			defer C.free(unsafe.Pointer(cname))
			var cerr *C.char
			status := C.credlock_nul_error(cname, &cerr)
			return takeError(status, cerr)
		}
	}
	return nil
}

func freeSecret(p *C.char) {
	if p != nil {
		C.credlock_go_free_secret(p)
	}
}

func optString(s string) *C.char {
	if s == "" {
		return nil
	}
	return cString(s)
}

// tagged calls f with every tagged field of o that is not its zero value, by its tag: the
// settings given (a nil o gives none).
func (o *Options) tagged(f func(name string, v any)) {
	if o == nil {
		return
	}
	v := reflect.ValueOf(o).Elem()
	for i := 0; i < v.NumField(); i++ {
		if name, field := v.Type().Field(i).Tag.Get("credlock"), v.Field(i); name != "" && !field.IsZero() {
			f(name, field.Interface())
		}
	}
}

// json is the settings object the host reads (credlock_open), a Duration as seconds.
func (o *Options) json(dir string) []byte {
	m := map[string]any{}
	if dir != "" {
		m["store_dir"] = dir
	}
	o.tagged(func(name string, v any) {
		if d, ok := v.(time.Duration); ok {
			v = d.Seconds()
		}
		m[name] = v
	})
	b, _ := json.Marshal(m) // strings, numbers, bools and KDFParams always marshal
	return b
}

// Open opens the store in dir ("" for $CREDLOCK_STORE, else the platform default). It
// touches no store file (the first call does) but loads the component, so a broken
// installation fails here. opts may be nil.
func Open(dir string, opts *Options) (*Store, error) {
	claimWakeSignal()
	pairs := []string{"store_dir", dir}
	opts.tagged(func(name string, v any) {
		if s, ok := v.(string); ok {
			pairs = append(pairs, name, s)
		}
	})
	if err := nulError(pairs...); err != nil {
		return nil, err
	}
	raw := opts.json(dir)
	text := C.CString(string(raw))
	for i := range raw {
		raw[i] = 0
	}
	defer freeSecret(text)
	var handle *C.credlock_store
	var cerr *C.char
	status := C.credlock_open(text, &handle, &cerr)
	if status != 0 {
		return nil, takeError(status, cerr)
	}
	s := &Store{handle: handle}
	runtime.SetFinalizer(s, (*Store).Close)
	return s, nil
}

// Close releases the store, waiting for calls in progress. Later calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle != nil {
		C.credlock_close(s.handle)
		s.handle = nil
	}
	runtime.SetFinalizer(s, nil)
	return nil
}

// takeBytes copies and frees (zeroing) a string the library handed out.
func takeBytes(p *C.char) []byte {
	if p == nil {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(C.strlen(p)))
	C.credlock_string_free(p)
	return b
}

type cfunc func(h *C.credlock_store, result, cerr **C.char) C.int

// call runs f on the store. With a context that can be canceled, f runs in its own
// goroutine and a cancellation returns ctx.Err() at once; the Rust call itself cannot be
// interrupted and finishes in the background (bounded by the lock and HTTP timeouts).
// The C strings in args belong to the call: they are zeroed and freed when it ends.
func (s *Store) call(ctx context.Context, f cfunc, args ...*C.char) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Done() == nil {
		return s.callNow(f, args)
	}
	if err := ctx.Err(); err != nil {
		freeAll(args)
		return nil, err
	}
	type outcome struct {
		b   []byte
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		b, err := s.callNow(f, args)
		done <- outcome{b, err}
	}()
	select {
	case o := <-done:
		return o.b, o.err
	case <-ctx.Done():
		go func() {
			// Zero a secret nobody will read.
			o := <-done
			for i := range o.b {
				o.b[i] = 0
			}
		}()
		return nil, ctx.Err()
	}
}

func freeAll(args []*C.char) {
	for _, p := range args {
		freeSecret(p)
	}
}

func (s *Store) callNow(f cfunc, args []*C.char) ([]byte, error) {
	defer freeAll(args)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.handle == nil {
		return nil, ErrClosed
	}
	var result, cerr *C.char
	status := f(s.handle, &result, &cerr)
	if status != 0 {
		if result != nil {
			C.credlock_string_free(result)
		}
		return nil, takeError(status, cerr)
	}
	return takeBytes(result), nil
}

func decode[T any](b []byte, err error) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	if e := json.Unmarshal(b, &v); e != nil {
		return v, &Error{Code: "internal", Message: "undecodable result from libcredlock: " + e.Error(), ExitCode: 10}
	}
	return v, nil
}

// AccessToken is a usable access token and what is known about it.
type AccessToken struct {
	Token     string
	TokenType string
	// ExpiresAt is zero when the server gave no lifetime.
	ExpiresAt time.Time
	Revision  uint64
	// Refreshed is true when this call refreshed it.
	Refreshed bool
}

type tokenJSON struct {
	Token       string  `json:"token"`
	TokenType   string  `json:"token_type"`
	ExpiresAtMs *uint64 `json:"expires_at_ms"`
	Revision    uint64  `json:"revision"`
	Refreshed   bool    `json:"refreshed"`
}

// decodePtr is decode for a result returned by pointer.
func decodePtr[T any](b []byte, err error) (*T, error) {
	v, err := decode[T](b, err)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func toAccessToken(b []byte, err error) (*AccessToken, error) {
	t, err := decode[tokenJSON](b, err)
	for i := range b {
		b[i] = 0
	}
	if err != nil {
		return nil, err
	}
	a := &AccessToken{Token: t.Token, TokenType: t.TokenType, Revision: t.Revision, Refreshed: t.Refreshed}
	if t.ExpiresAtMs != nil {
		a.ExpiresAt = time.UnixMilli(int64(*t.ExpiresAtMs))
	}
	return a, nil
}

func millis(d time.Duration) C.uint64_t {
	if d <= 0 {
		return 0
	}
	return C.uint64_t(d.Milliseconds())
}

// TokenInfo returns an access token valid for at least minValid more, refreshing it (once
// across every process and goroutine that asks) if needed.
func (s *Store) TokenInfo(ctx context.Context, tenant string, minValid time.Duration) (*AccessToken, error) {
	if err := nulError("tenant", tenant); err != nil {
		return nil, err
	}
	ct := cString(tenant)
	return toAccessToken(s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_token(h, ct, millis(minValid), r, e)
	}, ct))
}

// Token returns just the access token of TokenInfo.
func (s *Store) Token(ctx context.Context, tenant string, minValid time.Duration) (string, error) {
	t, err := s.TokenInfo(ctx, tenant, minValid)
	if err != nil {
		return "", err
	}
	return t.Token, nil
}

// RefreshOption qualifies Refresh.
type RefreshOption func(*refreshOptions)

type refreshOptions struct{ token, sha256 string }

// Rejected makes Refresh conditional: refresh only if the stored access token is still
// accessToken (one a resource server refused); otherwise return the newer stored one. The
// token is hashed in the library and never stored.
func Rejected(accessToken string) RefreshOption {
	return func(o *refreshOptions) { o.token = accessToken }
}

// RejectedSHA256 is Rejected given the token's SHA-256 (hex, or a prefix of at least 16
// characters) instead of the token.
func RejectedSHA256(hex string) RefreshOption {
	return func(o *refreshOptions) { o.sha256 = hex }
}

// Refresh refreshes the tenant's access token now (see Rejected).
func (s *Store) Refresh(ctx context.Context, tenant string, opts ...RefreshOption) (*AccessToken, error) {
	var o refreshOptions
	for _, f := range opts {
		f(&o)
	}
	if err := nulError("tenant", tenant, "rejected_token", o.token, "rejected_sha256", o.sha256); err != nil {
		return nil, err
	}
	ct := cString(tenant)
	if o.token != "" {
		rt := cString(o.token)
		return toAccessToken(s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
			return C.credlock_refresh_rejected(h, ct, rt, r, e)
		}, ct, rt))
	}
	rs := optString(o.sha256)
	return toAccessToken(s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_refresh(h, ct, rs, r, e)
	}, ct, rs))
}

// WriteReceipt says what a write produced.
type WriteReceipt struct {
	Revision   uint64 `json:"revision"`
	Generation uint64 `json:"generation"`
}

// Put stores a token response (the token endpoint's JSON, plus token_endpoint, client_id,
// ... to enable refresh) for tenant. It is durable when Put returns nil. If ctx is
// canceled first, Put returns ctx.Err() and the write may still complete (atomically).
// The expiry may be in any shape programs write (the README's "Token expiry"), an
// oauth2.Token marshalled to JSON included: its `expiry` is honoured, and Go's zero time
// means no expiry. Fields that disagree, or one named like an expiry that credlock does not
// understand, are an invalid-token-response error: an expiry is never dropped.
func (s *Store) Put(ctx context.Context, tenant string, tokenResponse []byte) (WriteReceipt, error) {
	if err := nulError("tenant", tenant); err != nil {
		return WriteReceipt{}, err
	}
	if bytes.IndexByte(tokenResponse, 0) >= 0 {
		return WriteReceipt{}, nulError("token_response", "\x00")
	}
	ct := cString(tenant)
	cr := C.CString(string(tokenResponse))
	return decode[WriteReceipt](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_put(h, ct, cr, r, e)
	}, ct, cr))
}

// TenantSummary describes a stored tenant, without secrets.
type TenantSummary struct {
	Tenant          string  `json:"tenant"`
	TokenType       string  `json:"token_type"`
	ExpiresAtMs     *uint64 `json:"expires_at_ms"`
	HasRefreshToken bool    `json:"has_refresh_token"`
	Scope           *string `json:"scope"`
	TokenEndpoint   *string `json:"token_endpoint"`
	ClientID        *string `json:"client_id"`
	Revision        uint64  `json:"revision"`
	NeedsReauth     bool    `json:"needs_reauth"`
	// RefreshIntent: a refresh of this tenant is in flight now, or one was interrupted
	// (then NeedsReauth says whether it may be retried).
	RefreshIntent bool `json:"refresh_intent"`
}

// List returns the tenants, sorted by name.
func (s *Store) List(ctx context.Context) ([]TenantSummary, error) {
	return decode[[]TenantSummary](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_list(h, r, e)
	}))
}

// Delete removes a tenant; false if it did not exist.
func (s *Store) Delete(ctx context.Context, tenant string) (bool, error) {
	if err := nulError("tenant", tenant); err != nil {
		return false, err
	}
	ct := cString(tenant)
	v, err := decode[struct {
		Deleted bool `json:"deleted"`
	}](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_delete(h, ct, r, e)
	}, ct))
	return v.Deleted, err
}

// Attachment returns a small value kept, sealed, with the tenant (an MCP client's
// registration, a PKCE verifier); ok is false when the tenant or the attachment is absent.
// Names are 1 to 64 of a-z, 0-9 and . _ - (starting with a letter or digit).
func (s *Store) Attachment(ctx context.Context, tenant, name string) (value string, ok bool, err error) {
	if err := nulError("tenant", tenant, "name", name); err != nil {
		return "", false, err
	}
	ct, cn := cString(tenant), cString(name)
	v, err := decode[struct {
		Value *string `json:"value"`
	}](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_attachment(h, ct, cn, r, e)
	}, ct, cn))
	if err != nil || v.Value == nil {
		return "", false, err
	}
	return *v.Value, true, nil
}

// SetAttachment sets (value non-nil, at most 64 KiB) or removes (nil) an attachment, leaving
// the tenant's tokens as they are. Writes of tokens keep attachments; Delete and Logout
// remove them. Setting one on a tenant without tokens creates it (Token still fails with
// ErrNotFound until tokens are stored). At most 16 per tenant. Durable when this returns.
func (s *Store) SetAttachment(ctx context.Context, tenant, name string, value *string) (WriteReceipt, error) {
	args := []string{"tenant", tenant, "name", name}
	if value != nil {
		args = append(args, "value", *value)
	}
	if err := nulError(args...); err != nil {
		return WriteReceipt{}, err
	}
	ct, cn := cString(tenant), cString(name)
	var cv *C.char
	if value != nil {
		cv = C.CString(*value)
	}
	return decode[WriteReceipt](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_set_attachment(h, ct, cn, cv, r, e)
	}, ct, cn, cv))
}

// Init creates the store if it does not exist; true if it did now.
func (s *Store) Init(ctx context.Context) (bool, error) {
	v, err := decode[struct {
		Created bool `json:"created"`
	}](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_init(h, r, e)
	}))
	return v.Created, err
}

// StoreInfo is the store's header.
type StoreInfo struct {
	Exists        bool     `json:"exists"`
	Generation    uint64   `json:"generation"`
	FormatVersion uint16   `json:"format_version"`
	KeyID         string   `json:"key_id"`
	SlotKinds     []string `json:"slot_kinds"`
	Tenants       uint32   `json:"tenants"`
}

// Info returns the store's header.
func (s *Store) Info(ctx context.Context) (*StoreInfo, error) {
	return decodePtr[StoreInfo](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_info(h, r, e)
	}))
}

// Slot is one key slot (never the key).
type Slot struct {
	Index    uint32 `json:"index"`
	Kind     string `json:"kind"`
	Describe string `json:"describe"`
	// Durable is false for slots lost at reboot (the kernel keyring).
	Durable bool `json:"durable"`
}

// Slots returns the store's key slots, in order.
func (s *Store) Slots(ctx context.Context) ([]Slot, error) {
	return decode[[]Slot](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_slots(h, r, e)
	}))
}

// AddSlot adds a slot of kind ("key-file", "passphrase", "keyring", "kernel-keyring");
// for "passphrase", newPassphrase ("" for Options.NewPassphrase). Returns the new slots.
func (s *Store) AddSlot(ctx context.Context, kind, newPassphrase string) ([]Slot, error) {
	if err := nulError("kind", kind, "new_passphrase", newPassphrase); err != nil {
		return nil, err
	}
	ck := cString(kind)
	cp := optString(newPassphrase)
	return decode[[]Slot](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_add_slot(h, ck, cp, r, e)
	}, ck, cp))
}

// RemoveSlot removes slot index (never the last; never leaving only volatile slots unless
// allowVolatileOnly). Returns the new slots.
func (s *Store) RemoveSlot(ctx context.Context, index uint32, allowVolatileOnly bool) ([]Slot, error) {
	return decode[[]Slot](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_remove_slot(h, C.uint32_t(index), C.bool(allowVolatileOnly), r, e)
	}))
}

// Rekey re-seals the store under a new data key from the same sources.
func (s *Store) Rekey(ctx context.Context) (*StoreInfo, error) {
	return decodePtr[StoreInfo](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_rekey(h, r, e)
	}))
}
