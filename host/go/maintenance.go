package credlock

/*
#include <stdlib.h>
#include "credlock.h"
*/
import "C"

import (
	"bytes"
	"context"
)

// ImportOptions says how to import: whether to replace tenants that exist, and, for one
// tenant's file, its kind and account (empty: detected; see the CLI's `import --from` and
// `--account`: token, go-oauth2, claude-code, codex, google-adc, msal, mcp, rmcp).
type ImportOptions struct {
	Replace bool
	Kind    string
	Account string
}

// ImportSkip is a part of the source left out, and why.
type ImportSkip struct {
	Tenant string `json:"tenant"`
	Reason string `json:"reason"`
}

// ImportReport is what an import did.
type ImportReport struct {
	Imported   []string     `json:"imported"`
	Skipped    []ImportSkip `json:"skipped"`
	Generation uint64       `json:"generation"`
	// ImportFile with removeSource only: whether the file was removed, and if not why.
	SourceRemoved bool    `json:"source_removed"`
	KeptReason    *string `json:"kept_reason"`
}

func (o *ImportOptions) c() (replace C.bool, kind, account *C.char, err error) {
	if o == nil {
		o = &ImportOptions{}
	}
	if err := nulError("kind", o.Kind, "account", o.Account); err != nil {
		return false, nil, nil, err
	}
	return C.bool(o.Replace), optString(o.Kind), optString(o.Account), nil
}

// ImportTokens imports plaintext tokens in one atomic write: one tenant's tokens in any
// shape ImportOptions lists (tenant names it), or with tenant "" a JSON object mapping
// tenants to token responses, such as an agent's auth.json. Parts that are not tokens (API
// keys, other accounts) are reported in Skipped. Existing tenants are an import-conflict
// error unless o.Replace.
func (s *Store) ImportTokens(ctx context.Context, source []byte, tenant string, o *ImportOptions) (*ImportReport, error) {
	if err := nulError("tenant", tenant); err != nil {
		return nil, err
	}
	if bytes.IndexByte(source, 0) >= 0 {
		return nil, nulError("source", "\x00")
	}
	replace, kind, account, err := o.c()
	if err != nil {
		return nil, err
	}
	ct := optString(tenant)
	cs := C.CString(string(source))
	return decodePtr[ImportReport](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_import_tokens(h, cs, ct, replace, kind, account, r, e)
	}, cs, ct, kind, account))
}

// ImportFile is ImportTokens of the file at path (a token kept with only expires_in is taken
// as received when the file was last written). With removeSource, the file is removed once
// the import is durable, only if everything in it was imported and it is still the file that
// was read; otherwise KeptReason says why it stayed.
func (s *Store) ImportFile(ctx context.Context, path, tenant string, removeSource bool, o *ImportOptions) (*ImportReport, error) {
	if err := nulError("path", path, "tenant", tenant); err != nil {
		return nil, err
	}
	replace, kind, account, err := o.c()
	if err != nil {
		return nil, err
	}
	cp := cString(path)
	ct := optString(tenant)
	return decodePtr[ImportReport](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_import_file(h, cp, ct, replace, C.bool(removeSource), kind, account, r, e)
	}, cp, ct, kind, account))
}

// RecoverReport is what Recover did.
type RecoverReport struct {
	// QuarantinedAs is where the store file was moved aside, if there was one.
	QuarantinedAs  *string  `json:"quarantined_as"`
	Generation     uint64   `json:"generation"`
	Tenants        uint32   `json:"tenants"`
	RefreshUnknown []string `json:"refresh_unknown"`
}

// Quarantine moves a store that cannot be read aside (with force, also one that reads as
// another key or a newer format) and returns its new name; never deletes.
func (s *Store) Quarantine(ctx context.Context, force bool) (string, error) {
	v, err := decode[struct {
		QuarantinedAs string `json:"quarantined_as"`
	}](s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {
		return C.credlock_quarantine(h, C.bool(force), r, e)
	}))
	return v.QuarantinedAs, err
}

// PendingLogin is a login in progress (in any process), without secrets.
type PendingLogin struct {
	Tenant      string `json:"tenant"`
	Kind        string `json:"kind"`
	StartedAtMs uint64 `json:"started_at_ms"`
	ExpiresAtMs uint64 `json:"expires_at_ms"`
	// Understood is false for a login written by a newer credlock.
	Understood bool `json:"understood"`
}
