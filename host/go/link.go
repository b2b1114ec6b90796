package credlock

// Where cgo finds libcredlock in a checkout of the repository: the header beside the C ABI's
// source and the library cargo builds (host/go/run-tests.sh: `cargo build -p credlock-capi`).
// scripts/release.sh replaces this file in the module it publishes with link_release.go.in,
// which links the prebuilt static library the module carries, so that `go get` and a C
// compiler are all a Go user needs.

/*
#cgo CFLAGS: -I${SRCDIR}/../capi/include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -Wl,-rpath,${SRCDIR}/../../target/debug -lcredlock
*/
import "C"
