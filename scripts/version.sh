#!/usr/bin/env bash
# credlock's one version number. Its source is `[workspace.package] version` in Cargo.toml;
# the CLI, the C ABI and the Go module's tag take it from there at build time, the Python
# package through maturin (pyproject.toml's dynamic version), and the Node package's
# package.json (and its lock file) carries a copy that this script writes and checks.
#   bash scripts/version.sh              print it
#   bash scripts/version.sh check        fail, naming the file, where a copy differs
#   bash scripts/version.sh set X.Y.Z    write it everywhere
set -euo pipefail
cd "$(dirname "$0")/.."

current() {
  # The first `version = "..."` after [workspace.package].
  awk '/^\[workspace\.package\]/ { p = 1; next } /^\[/ { p = 0 } p && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' Cargo.toml
}
node_copies() {
  node -e '
    const fs = require("fs");
    const pkg = JSON.parse(fs.readFileSync("host/node/package.json", "utf8"));
    const lock = JSON.parse(fs.readFileSync("host/node/package-lock.json", "utf8"));
    console.log(`host/node/package.json ${pkg.version}`);
    console.log(`host/node/package-lock.json ${lock.version}`);
    console.log(`host/node/package-lock.json(packages."") ${lock.packages[""].version}`);'
}

v="$(current)"
[[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version: Cargo.toml's [workspace.package] version '$v' is not MAJOR.MINOR.PATCH" >&2; exit 1; }
case "${1:-}" in
  "") echo "$v" ;;
  check)
    bad=0
    while read -r file copy; do
      if [ "$copy" != "$v" ]; then
        echo "version: $file says $copy, Cargo.toml says $v: run bash scripts/version.sh set $v" >&2
        bad=1
      fi
    done < <(node_copies)
    grep -q '^dynamic = \["version"\]' host/python/pyproject.toml \
      || { echo "version: host/python/pyproject.toml must take its version from Cargo.toml (dynamic = [\"version\"])" >&2; bad=1; }
    [ "$bad" -eq 0 ] && echo "version: $v everywhere"
    exit "$bad" ;;
  set)
    new="${2:?usage: scripts/version.sh set X.Y.Z}"
    [[ "$new" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version: '$new' is not MAJOR.MINOR.PATCH" >&2; exit 2; }
    awk -v new="$new" '/^\[workspace\.package\]/ { p = 1 } /^\[/ && !/workspace\.package/ { p = 0 }
      p && /^version *=/ && !done { print "version = \"" new "\""; done = 1; next } { print }' Cargo.toml > Cargo.toml.new
    mv Cargo.toml.new Cargo.toml
    node -e '
      const fs = require("fs"); const v = process.argv[1];
      const edit = (f, fn) => { const j = JSON.parse(fs.readFileSync(f, "utf8")); fn(j); fs.writeFileSync(f, JSON.stringify(j, null, 2) + "\n"); };
      edit("host/node/package.json", (j) => { j.version = v; });
      edit("host/node/package-lock.json", (j) => { j.version = v; j.packages[""].version = v; });' "$new"
    # The workspace members' entries in Cargo.lock follow.
    cargo update --workspace --offline --quiet
    echo "version: $new (was $v)" ;;
  *) echo "usage: scripts/version.sh [check | set X.Y.Z]" >&2; exit 2 ;;
esac
