#!/usr/bin/env bash
# Inside the room tests/release/run.sh makes (fresh HOME, system PATH, no network): install
# each artifact from $DIST as its users would, and use it. $REPO provides only test inputs
# (the shared vectors, the OAuth test server, the interop workers), never a build.
set -euo pipefail
step() { printf '\n== %s\n' "$*"; }
fail() { echo "release test: $*" >&2; exit 1; }
cd "$ROOM"

step "the room: no Rust toolchain, no network, a fresh HOME"
for tool in cargo rustc rustup; do
  if command -v "$tool" >/dev/null 2>&1; then fail "$tool is on PATH ($(command -v "$tool"))"; fi
done
# This network namespace's interfaces (/sys/class/net still shows the host's).
interfaces="$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
[ "$interfaces" = "lo " ] || fail "network interfaces other than loopback: $interfaces"
ip link set lo up
echo "PATH=$PATH HOME=$HOME; network interfaces: $interfaces"
version="$(awk '/^\[workspace\.package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' "$REPO/Cargo.toml")"
echo "version $version"

step "CLI: the tarball unpacked into an empty directory"
mkdir cli
tar -xzf "$DIST/credlock-$version-x86_64-unknown-linux-musl.tar.gz" -C cli
cli_root="$ROOM/cli/credlock-$version-x86_64-unknown-linux-musl"
(cd "$cli_root" && ls -l bin && echo "man pages: $(ls share/man/man1 | wc -l); completions: $(ls share/bash-completion/completions share/zsh/site-functions share/fish/vendor_completions.d | grep -c credlock)")
export PATH="$cli_root/bin:$PATH"
ldd_out="$(ldd "$cli_root/bin/credlock" 2>&1 || true)"
echo "ldd: $ldd_out"
case "$ldd_out" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) fail "the CLI is not static: $ldd_out" ;;
esac
if grep -q NEEDED <<<"$(readelf -d "$cli_root/bin/credlock")"; then fail "the CLI needs shared libraries"; fi
if grep -qE '\.debug_|\.symtab' <<<"$(readelf -S "$cli_root/bin/credlock")"; then fail "the CLI carries debug info or symbols"; fi
credlock --version
cli_version="$(credlock --version)"
for cmd in init put token login; do
  credlock "$cmd" --help >/dev/null || fail "credlock $cmd --help failed"
  echo "credlock $cmd --help: ok"
done
[ -s "$cli_root/share/man/man1/credlock.1" ] || fail "no man page"
grep -q credlock "$cli_root/share/bash-completion/completions/credlock" || fail "no bash completion"
export CREDLOCK_STORE="$ROOM/cli-store"
credlock init
echo '{"access_token":"git-token-1","expires_in":3600}' | credlock put forge
credlock helper map git https://git.example.test/team forge --username x-access-token
# Real git runs `git-credential-credlock` (the link) as its helper "credlock".
filled="$(printf 'protocol=https\nhost=git.example.test\npath=team/repo.git\n\n' \
  | GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 \
    git -c credential.helper=credlock -c credential.useHttpPath=true credential fill)"
echo "$filled" | grep -v '^password=' || true
grep -qx 'password=git-token-1' <<<"$filled" || fail "git did not get the token through git-credential-credlock"
grep -qx 'username=x-access-token' <<<"$filled" || fail "git did not get the username"
echo "git credential fill through the helper link: ok"
docker-credential-credlock version
grep -qF "(credlock) ${cli_version#credlock }" <<<"$(docker-credential-credlock version)" || fail "docker-credential-credlock version: $(docker-credential-credlock version)"
unset CREDLOCK_STORE

step "Python: the wheel into a fresh venv"
"$PYTHON" -m venv venv
venv/bin/pip install -q --no-index --disable-pip-version-check "$DIST"/credlock-"$version"-*.whl
venv/bin/pip install -q --no-index --disable-pip-version-check --find-links "$REPO/target/tools/wheelhouse" pytest
venv/bin/pip list --disable-pip-version-check 2>/dev/null | grep -E '^(credlock|pytest) '
py_report="$(venv/bin/python -c 'import credlock, json; print(json.dumps({"file": credlock.__file__, "version": credlock.__version__, "component": credlock.COMPONENT_SHA256}))')"
echo "$py_report"
case "$py_report" in *"$ROOM/venv/"*) ;; *) fail "credlock was not imported from the venv" ;; esac
# The binding's own tests that build nothing: the vectors, the store, the binding's types and
# errors, stores it cannot read. The Rust CLI they run is the tarball's. Less the one that
# injects a panic through a failpoint, which a release build does not carry (host/src/
# failpoints.rs: debug builds, or the `failpoints` feature).
(cd "$REPO/host/python" && CREDLOCK_CLI="$cli_root/bin/credlock" "$ROOM/venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_vectors.py tests/test_store.py tests/test_binding.py tests/test_unreadable.py \
  --deselect tests/test_binding.py::test_a_panic_inside_a_call_is_an_internal_error_and_frees_the_lock)

step "Node: the tarballs into an empty project, offline"
mkdir app-node
(cd app-node && npm init -y >/dev/null && npm install --offline --no-audit --no-fund --loglevel=error \
  "$DIST/credlock-linux-x64-gnu-$version.tgz" "$DIST/credlock-$version.tgz")
ls app-node/node_modules
[ ! -e app-node/node_modules/credlock/build ] || fail "the Node package was built on install"
node_entry="$ROOM/app-node/node_modules/credlock/src/index.js"
node_report="$(cd app-node && node --input-type=module -e "import { version, componentSha256 } from 'credlock'; console.log(JSON.stringify({ version, component: componentSha256 }))")"
echo "$node_report"
CREDLOCK_TEST_PACKAGE="file://$node_entry" CREDLOCK_VECTORS="$REPO/tests/vectors" \
  node --test --test-reporter=spec "$REPO/host/node/test/vectors.test.mjs"

step "Go: go get from the module proxy in dist/, then go run"
export GOPATH="$ROOM/gopath" GOCACHE="$ROOM/gocache" GOPROXY="file://$DIST/goproxy" \
  GOFLAGS=-mod=mod GONOSUMDB=credlock.dev CGO_ENABLED=1
mkdir app-go
cp "$REPO/tests/release/goapp/main.go" app-go/
(cd app-go && go mod init example.test/app >/dev/null 2>&1 && go get "credlock.dev/credlock@v$version")
cat app-go/go.mod
go_report="$(cd app-go && go run . "$ROOM/go-store")"
echo "$go_report"
grep -q '"token":"from-go"' <<<"$go_report" || fail "the Go program did not read its token"
# The package's own vector test, from the module cache.
(cd app-go && CREDLOCK_VECTORS="$REPO/tests/vectors" go test -count=1 -run '^TestVectors$' -v credlock.dev/credlock 2>&1 | grep -E '^ *(--- |ok|FAIL|PASS)' )

step "One version and one component everywhere"
component="$(echo "$py_report" | sed 's/.*"component": "\([0-9a-f]*\)".*/\1/')"
[ "${#component}" -eq 64 ] || fail "Python's component hash: $py_report"
grep -qF "credlock $version (component sha256 $component," <<<"$cli_version" || fail "CLI: $cli_version"
grep -qF "\"version\": \"$version\"" <<<"$py_report" || fail "Python: $py_report"
grep -qF "{\"version\":\"$version\",\"component\":\"$component\"}" <<<"$node_report" || fail "Node: $node_report"
grep -qF "\"component_sha256\":\"$component\"" <<<"$go_report" || fail "Go: $go_report"
grep -qF "\"version\":\"$version\"" <<<"$go_report" || fail "Go: $go_report"
echo "credlock $version, component $component: CLI, Python, Node and Go agree"

step "Four artifacts, one store: a refresh storm against the real OAuth server"
mkdir goworker
cp "$REPO/tests/interop/goworker/main.go" goworker/
(cd goworker && go mod init example.test/goworker >/dev/null 2>&1 && go get "credlock.dev/credlock@v$version" && go build -o goworker .)
# tests/interop's storm, its processes from the installed artifacts: the tarball's CLI, the
# venv's Python, the npm-installed package under Node, the Go worker built from the proxy.
(cd "$REPO" && CREDLOCK_CLI="$cli_root/bin/credlock" CREDLOCK_GO_WORKER="$ROOM/goworker/goworker" \
  INTEROP_NODE_MODULE="file://$node_entry" \
  "$ROOM/venv/bin/python" -m pytest -q -s -p no:cacheprovider tests/interop/test_interop.py \
  -k "storm or (share_one_store and directory)")
echo
echo "release test: all passed"
