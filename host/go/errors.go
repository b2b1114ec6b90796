package credlock

/*
#include <stdlib.h>
#include "credlock.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
)

// Error is a failed credlock call, as the library reports it: the same code, message,
// recommendation and exit code as the credlock CLI. Match it with errors.Is against the
// sentinels below, or errors.As to read the fields.
type Error struct {
	// Code is the WIT store-error case: "not-found", "lock-timeout", "key", ...
	Code string
	// Case is the inner case where the code has one ("wrong-passphrase", "oauth", ...).
	Case string
	// Message says what happened; Recommendation what to do next.
	Message        string
	Recommendation string
	// ExitCode is the credlock CLI's exit code for this error.
	ExitCode int
	// Detail holds the error's fields by name ("tenant", "lock", "waited_ms",
	// "slot_kinds", ...). Never a secret.
	Detail map[string]any
}

func (e *Error) Error() string {
	if e.Recommendation == "" {
		return "credlock: " + e.Message
	}
	return "credlock: " + e.Message + " (" + e.Recommendation + ")"
}

// Is matches a sentinel: by Code (and Case, where the sentinel has one), or for the
// exit-code groups (ErrUnreadable, ErrNeedsLogin, ...) by ExitCode.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t == nil {
		return false
	}
	if t.Code == "" {
		return t.ExitCode != 0 && t.ExitCode == e.ExitCode
	}
	return t.Code == e.Code && (t.Case == "" || t.Case == e.Case)
}

func sentinel(code, c string) *Error {
	return &Error{Code: code, Case: c, Message: code}
}

func group(exit int, name string) *Error {
	return &Error{ExitCode: exit, Message: name}
}

// Sentinels, one per store-error code (wit/store.wit).
var (
	ErrInvalidTenant         = sentinel("invalid-tenant", "")
	ErrInvalidTokenResponse  = sentinel("invalid-token-response", "")
	ErrInvalidOptions        = sentinel("invalid-options", "")
	ErrInvalidAttachment     = sentinel("invalid-attachment", "")
	ErrNotFound              = sentinel("not-found", "")
	ErrExpired               = sentinel("expired", "")
	ErrReauthNeeded          = sentinel("reauth-needed", "")
	ErrRefreshOutcomeUnknown = sentinel("refresh-outcome-unknown", "")
	ErrEndpoint              = sentinel("endpoint", "")
	ErrLockTimeout           = sentinel("lock-timeout", "")
	ErrRefreshContended      = sentinel("refresh-contended", "")
	ErrIO                    = sentinel("io", "")
	ErrKey                   = sentinel("key", "")
	ErrNotAStore             = sentinel("not-a-store", "")
	ErrUnsupportedVersion    = sentinel("unsupported-version", "")
	ErrCorrupt               = sentinel("corrupt", "")
	ErrSlotChange            = sentinel("slot-change", "")
	ErrRecover               = sentinel("recover", "")
	ErrImportConflict        = sentinel("import-conflict", "")
	ErrInternal              = sentinel("internal", "")
)

// Sentinels for key errors by case.
var (
	ErrWrongPassphrase     = sentinel("key", "wrong-passphrase")
	ErrWrongKeyFile        = sentinel("key", "wrong-key-file")
	ErrNoKeySource         = sentinel("key", "no-key-source")
	ErrNoMatchingSlot      = sentinel("key", "no-matching-slot")
	ErrKeyringEntryMissing = sentinel("key", "keyring-entry-missing")
)

// Sentinels for the CLI's exit-code groups.
var (
	// ErrUsage: bad arguments, tenant name or token JSON (exit 2).
	ErrUsage = group(2, "usage")
	// ErrNeedsLogin: expired, re-login needed, or refresh outcome unknown (exit 4).
	ErrNeedsLogin = group(4, "needs login")
	// ErrUnreadable: corrupt, wrong key, unknown version, not a store (exit 6).
	ErrUnreadable = group(6, "unreadable")
	// ErrRefused: refused as asked (exit 9).
	ErrRefused = group(9, "refused")
)

type reportJSON struct {
	Code           string         `json:"code"`
	Case           *string        `json:"case"`
	Message        string         `json:"message"`
	Recommendation string         `json:"recommendation"`
	ExitCode       int            `json:"exit_code"`
	Detail         map[string]any `json:"detail"`
}

// takeError builds an *Error from the library's report (and frees it).
func takeError(status C.int, report *C.char) error {
	b := takeBytes(report)
	var r reportJSON
	if b == nil || json.Unmarshal(b, &r) != nil {
		return &Error{Code: "internal", Message: fmt.Sprintf("libcredlock failed with status %d and no report", int(status)), ExitCode: int(status)}
	}
	e := &Error{Code: r.Code, Message: r.Message, Recommendation: r.Recommendation, ExitCode: r.ExitCode, Detail: r.Detail}
	if r.Case != nil {
		e.Case = *r.Case
	}
	return e
}
