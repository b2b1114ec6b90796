#!/usr/bin/env bash
# The Go binding's tests and the C ABI's: builds libcredlock (host/capi, dev profile, in the
# workspace target dir, reusing what `cargo test --workspace` built) and the credlock CLI,
# checks the committed header is current, runs the C test, then `go test ./...`.
# Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
command -v go >/dev/null 2>&1 || { echo "go is not installed: run scripts/setup.sh" >&2; exit 1; }

echo "== libcredlock (host/capi) and the CLI, dev profile"
cargo build -p credlock-capi -p credlock
echo "== the committed header is what cbindgen generates"
cargo test -p credlock-capi --test header -q

lib="$root/target/debug"
echo "== the C test (host/go/ctest/smoke.c against host/capi/include/credlock.h)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
${CC:-cc} -std=c99 -Wall -Wextra -Werror -I "$root/host/capi/include" "$here/ctest/smoke.c" \
  -L "$lib" -Wl,-rpath,"$lib" -lcredlock -o "$work/smoke"
"$work/smoke" "$work/store"

echo "== go test (host/go)"
cd "$here"
export CGO_ENABLED=1
export CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib ${CGO_LDFLAGS:-}"
unformatted="$(gofmt -l .)"
[ -z "$unformatted" ] || { echo "gofmt: not formatted: $unformatted" >&2; exit 1; }
go vet ./...
set +e
# `-bench . -benchtime 1x` runs each benchmark once, so a broken one fails here too.
go test -count=1 -timeout 15m -v -bench . -benchtime 1x ./... >"$work/go-test.log" 2>&1
status=$?
set -e
# The outcome of every test and subtest, the figures, and any failure's output.
grep -vE '^=== (RUN|PAUSE|CONT)' "$work/go-test.log" || true
passed=$(grep -cE -- '^ *--- PASS' "$work/go-test.log" || true)
failed=$(grep -cE -- '^ *--- FAIL' "$work/go-test.log" || true)
skipped=$(grep -cE -- '^ *--- SKIP' "$work/go-test.log" || true)
echo "go: $passed passed, $failed failed, $skipped skipped"
# A skipped test proved nothing: in CI a missing keyring or tool is a failure, as in the
# Rust, Python and Node suites.
if [ "$skipped" -ne 0 ]; then
  echo "go: $skipped test(s) skipped; a skip is a failure here" >&2
  [ "$status" -ne 0 ] || status=1
fi
[ "$status" -eq 0 ] || exit "$status"

# Tokens the real golang.org/x/oauth2 marshals (tests/go-oauth2). No Go module proxy is
# reachable, so it builds in GOPATH mode against Debian's golang-golang-x-oauth2-dev
# (scripts/setup.sh installs it): credlock.dev/credlock is this package, linked into a GOPATH
# beside the directories its cgo flags name relative to it (../capi, ../../target).
echo "== Go's oauth2.Token through the binding and the CLI (tests/go-oauth2)"
gocode=/usr/share/gocode
[ -d "$gocode/src/golang.org/x/oauth2" ] || { echo "golang.org/x/oauth2 is missing from $gocode: run scripts/setup.sh" >&2; exit 1; }
gopath="$work/gopath"
mkdir -p "$gopath/src/credlock.dev"
ln -s "$here" "$gopath/src/credlock.dev/credlock"
ln -s "$root/host/capi" "$gopath/src/credlock.dev/capi"
ln -s "$root/target" "$gopath/src/target"
ln -s "$root/tests/go-oauth2" "$gopath/src/credlock.dev/go-oauth2"
# The adapter over golang.org/x/oauth2 (host/go/oauth2, a module of its own so that the
# credlock package keeps no dependency) is vetted and tested there too.
(
  cd "$gopath/src/credlock.dev/go-oauth2"
  export GO111MODULE=off GOPATH="$gopath:$gocode" GOFLAGS= CREDLOCK_ROOT="$root" \
    CREDLOCK_CLI="$root/target/debug/credlock"
  go vet . credlock.dev/credlock/oauth2
  go test -count=1 -v . 2>&1 | tee "$work/go-oauth2.log"
)
for t in TestGoTokensKeepTheirExpiry TestAdapterStorm TestAdapterA401CostsOneRefresh TestStoreTokenFeedsCredlock; do
  grep -q -- "^--- PASS: $t " "$work/go-oauth2.log" || { echo "tests/go-oauth2: $t did not pass" >&2; exit 1; }
done
