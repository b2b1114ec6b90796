#!/usr/bin/env bash
# The release artifacts (dist/, from scripts/release.sh) installed and used as a user would,
# where no Rust toolchain is: a room of its own (tests/release/room.sh) with a fresh HOME,
# a PATH without cargo, rustc or rustup, and no network (a network namespace holding only
# loopback). Needs dist/ (bash scripts/release.sh) and scripts/setup.sh's tools.
#   bash tests/release/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
[ -f dist/SHA256SUMS ] || { echo "release test: dist/ is not built: run bash scripts/release.sh" >&2; exit 1; }
(cd dist && sha256sum --quiet -c SHA256SUMS) || { echo "release test: dist/ does not match its SHA256SUMS" >&2; exit 1; }
[ -d tests/oauth-server/node_modules ] || { echo "release test: tests/oauth-server is not installed: run bash scripts/setup.sh" >&2; exit 1; }
ls target/tools/wheelhouse/pytest-*.whl >/dev/null 2>&1 || { echo "release test: no pytest wheel: run bash scripts/setup.sh release" >&2; exit 1; }
command -v unshare >/dev/null || { echo "release test: unshare (util-linux) is needed" >&2; exit 1; }

room="$(mktemp -d /tmp/credlock-release-room-XXXXXX)"
trap 'rm -rf "$room"' EXIT
mkdir -p "$room/home" "$room/tmp"
# A Python interpreter for the venv, outside PATH's reach (pyenv's shims need $HOME).
python="$(python3 -c 'import sys; print(sys.executable)')"
# The system's directories only: cargo, rustc and rustup live in ~/.cargo/bin.
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec unshare --net -- env -i HOME="$room/home" TMPDIR="$room/tmp" PATH="$path" LANG=C.UTF-8 \
  ROOM="$room" DIST="$root/dist" REPO="$root" PYTHON="$python" \
  bash "$root/tests/release/room.sh"
