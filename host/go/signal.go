package credlock

/*
#include <signal.h>
#include <string.h>
#include <stdlib.h>

// The signal libcredlock interrupts a lock wait with (host/src/locks.rs): SIGRTMIN+6.
static int credlock_go_wake_signal(void) { return SIGRTMIN + 6; }

// The Go runtime installs its own handler (with SA_RESTART) on every real-time signal at
// start-up, so the library would find the signal claimed and fall back to waiting for a busy
// lock in a helper thread. If the handler there is the Go runtime's (the same as SIGURG's,
// which the runtime always owns), restore the default, so that the library's first lock
// wait installs its own (SA_ONSTACK, no SA_RESTART). A handler anyone else installed, or
// SIG_IGN, is left alone. Returns 1 if released, 0 if left, -1 on error.
static int credlock_go_release_wake_signal(void) {
	int sig = SIGRTMIN + 6;
	struct sigaction cur, go;
	if (sigaction(sig, NULL, &cur) != 0 || sigaction(SIGURG, NULL, &go) != 0) return -1;
	if (!(cur.sa_flags & SA_SIGINFO) || !(go.sa_flags & SA_SIGINFO)) return 0;
	if (cur.sa_sigaction != go.sa_sigaction) return 0;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	return sigaction(sig, &dfl, NULL) == 0 ? 1 : -1;
}

// What is installed on the wake signal now: 0 default, 1 the Go runtime's, 2 another.
static int credlock_go_wake_disposition(void) {
	int sig = SIGRTMIN + 6;
	struct sigaction cur, go;
	if (sigaction(sig, NULL, &cur) != 0 || sigaction(SIGURG, NULL, &go) != 0) return -1;
	if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL) return 0;
	if ((cur.sa_flags & SA_SIGINFO) && (go.sa_flags & SA_SIGINFO) && cur.sa_sigaction == go.sa_sigaction) return 1;
	return 2;
}
*/
import "C"

import (
	"os"
	"sync"
)

var wakeOnce sync.Once

// claimWakeSignal hands SIGRTMIN+6 (signal 40 with glibc) from the Go runtime to
// libcredlock, once, before the first store is opened. The library's lock wait then blocks
// in flock in the calling thread and is interrupted at its deadline by that signal, so a
// released lock is handed over within microseconds. Without it (a program that needs the
// signal itself sets CREDLOCK_GO_KEEP_WAKE_SIGNAL=1) the library waits for a busy lock in a
// helper thread: the same locks and timeouts, a slower hand-over.
//
// A program that later calls signal.Notify or signal.Ignore for SIGRTMIN+6 should not: the
// runtime would not see that signal any more (Notify), or the lock wait could no longer be
// interrupted at its deadline (Ignore).
func claimWakeSignal() {
	wakeOnce.Do(func() {
		if os.Getenv("CREDLOCK_GO_KEEP_WAKE_SIGNAL") != "" {
			return
		}
		C.credlock_go_release_wake_signal()
	})
}

// wakeSignal reports the wake signal's number and its current owner (for tests):
// 0 default, 1 the Go runtime, 2 another handler (the library's, once it has waited).
func wakeSignal() (signal int, owner int) {
	return int(C.credlock_go_wake_signal()), int(C.credlock_go_wake_disposition())
}
