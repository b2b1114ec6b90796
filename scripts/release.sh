#!/usr/bin/env bash
# Builds, from a checkout, what a release publishes, into dist/ (README, "Install"):
#   credlock-V-x86_64-unknown-linux-musl.tar.gz   the static CLI, its helper links, man pages
#                                                 and completions
#   credlock-V-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl, credlock-V.tar.gz
#                                                 the Python wheel and sdist
#   credlock-V.tgz, credlock-linux-x64-gnu-V.tgz  the Node package and its prebuilt addon
#   goproxy/credlock.dev/credlock/@v/...          the Go module as a module proxy serves it,
#                                                 with libcredlock.a for linux/amd64
#   SHA256SUMS, SIZES                             checksums; sizes and build times
# Two target directories: target/ for the musl CLI, target/dist-gnu for the three glibc
# artifacts (built by zig against glibc 2.17, so that one compile of wasmtime serves them).
# Every build runs under `nice -n 5` (a shared 2-core machine).
#   bash scripts/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
bash scripts/setup.sh release
bash scripts/version.sh check
version="$(bash scripts/version.sh)"
dist="$root/dist"
rm -rf "$dist"
mkdir -p "$dist"
venv="$root/target/tools/release-venv"
export PATH="$venv/bin:$PATH"
# Reproducible archives: every file dated by the commit. (Given to tar and the zip writer
# only: exported as SOURCE_DATE_EPOCH, which cc-rs tracks, it would rebuild every crate with
# C in it, wasmtime included, whenever the commit changes.)
epoch="$(git log -1 --format=%ct)"
timings="$(mktemp)"
trap 'rm -f "$timings"' EXIT
timed() { # NAME CMD...: run, and note the wall time
  local name="$1" start
  shift
  start=$(date +%s)
  "$@"
  echo "$name $(($(date +%s) - start))" >>"$timings"
}
tar_dir() { # DIR OUT: a tarball of DIR owned by root, sorted, dated by the commit
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$(dirname "$1")" -czf "$2" "$(basename "$1")"
}

# ---- One component for every artifact, built once and handed to each build as it is
# (host/build.rs takes CREDLOCK_COMPONENT). Left to compile it themselves, each in its own
# environment (maturin's zig variables among them), the wheel and the addon embedded other
# bytes than the CLI: tests/release/run.sh compares the hashes each artifact reports.
nice -n 5 cargo build --locked -p credlock-component --target wasm32-wasip2 --profile guest \
  --target-dir "$root/target/guest"
export CREDLOCK_COMPONENT="$root/target/guest/wasm32-wasip2/guest/credlock_component.wasm"
component_sha256="$(sha256sum "$CREDLOCK_COMPONENT" | cut -d' ' -f1)"
echo "release: component sha256 $component_sha256"

# ---- The CLI: static (musl), stripped.
musl=x86_64-unknown-linux-musl
timed cli nice -n 5 cargo build --locked --profile dist --target "$musl" -p credlock --bin credlock
cli="$root/target/$musl/dist/credlock"
# Static: no shared library needed, no interpreter (ldd says "statically linked" for the
# static-pie rustc makes, and exits 0 for it too, so ask the ELF file itself).
if grep -qE 'NEEDED|INTERP' <<<"$(readelf -ld "$cli")"; then
  echo "release: $cli needs shared libraries:" >&2
  readelf -d "$cli" | grep NEEDED >&2
  exit 1
fi
name="credlock-$version-$musl"
stage="$(mktemp -d)/$name"
mkdir -p "$stage/bin" "$stage/share/man/man1" "$stage/share/bash-completion/completions" \
  "$stage/share/zsh/site-functions" "$stage/share/fish/vendor_completions.d"
cp "$cli" "$stage/bin/credlock"
# The credential helpers are the CLI under the names git and docker run.
ln -s credlock "$stage/bin/git-credential-credlock"
ln -s credlock "$stage/bin/docker-credential-credlock"
"$cli" man --dir "$stage/share/man/man1"
"$cli" completions bash >"$stage/share/bash-completion/completions/credlock"
"$cli" completions zsh >"$stage/share/zsh/site-functions/_credlock"
"$cli" completions fish >"$stage/share/fish/vendor_completions.d/credlock.fish"
cp README.md "$stage/README.md"
tar_dir "$stage" "$dist/$name.tar.gz"
rm -rf "$(dirname "$stage")"

# ---- The glibc artifacts, linked by zig against glibc 2.17 (manylinux2014).
gnu_target="$root/target/dist-gnu"
export CARGO_TARGET_DIR="$gnu_target"
gnu_out="$gnu_target/x86_64-unknown-linux-gnu/dist"
# The Python wheel (abi3: one wheel for CPython 3.9 and later) and the sdist.
timed wheel nice -n 5 maturin build --locked --profile dist --zig --compatibility manylinux2014 \
  --target x86_64-unknown-linux-gnu --manifest-path host/python/Cargo.toml -o "$dist"
maturin sdist --manifest-path host/python/Cargo.toml -o "$dist"
# With the component's crate and the WIT, which host/build.rs compiles and maturin leaves out.
python3 scripts/sdist_complete.py "$dist/credlock-$version.tar.gz"
wheel="$(ls "$dist"/credlock-"$version"-*.whl)"
auditwheel show "$wheel"
tag="$(auditwheel show --json "$wheel" | python3 -c 'import json, sys; print(json.load(sys.stdin)["overall_tag"])')"
[ "$tag" = manylinux_2_17_x86_64 ] \
  || { echo "release: auditwheel finds $wheel $tag, not manylinux_2_17_x86_64 (manylinux2014)" >&2; exit 1; }

# The Node addon and libcredlock.a, linked the same way. cargo-zigbuild alone would write its
# compiler wrappers at another path than maturin's, and cc-rs's builds (ring, libdbus,
# wasmtime's C helpers) rerun when CC changes, taking wasmtime and all above it with them:
# so the wrappers maturin just used are given to cargo as cargo-zigbuild gives them.
maturin_wrappers=""
for d in "${XDG_CACHE_HOME:-$HOME/.cache}"/cargo-zigbuild/*/wrappers/*/; do
  if [ "$(readlink "${d}ar")" = "$venv/bin/maturin" ] && ls "${d}"zigcc-x86_64-unknown-linux-gnu.2.17-*.sh >/dev/null 2>&1; then
    maturin_wrappers="${d%/}"
  fi
done
if [ -n "$maturin_wrappers" ]; then
  w="$maturin_wrappers"
  zigcc="$(ls "$w"/zigcc-x86_64-unknown-linux-gnu.2.17-*.sh | head -n1)"
  timed node-and-capi env \
    CC_x86_64_unknown_linux_gnu="$zigcc" \
    CXX_x86_64_unknown_linux_gnu="$(ls "$w"/zigcxx-x86_64-unknown-linux-gnu.2.17-*.sh | head -n1)" \
    AR_x86_64_unknown_linux_gnu="$w/ar" RANLIB_x86_64_unknown_linux_gnu="$w/zigranlib.sh" \
    CMAKE_TOOLCHAIN_FILE_x86_64_unknown_linux_gnu="$w/cmake/x86_64-unknown-linux-gnu-toolchain.cmake" \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$zigcc" \
    CARGO_TARGET_APPLIES_TO_HOST=false CARGO_UNSTABLE_TARGET_APPLIES_TO_HOST=true \
    __CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS=nightly \
    ZIG_COMMAND="$venv/bin/python3 -m ziglang" CARGO_ZIGBUILD_TARGET=x86_64-linux-gnu.2.17 \
    CARGO_ZIGBUILD_TARGET_x86_64_unknown_linux_gnu=x86_64-linux-gnu.2.17 \
    CARGO_ZIGBUILD_RUSTC_VERSION="$(rustc --version | awk '{print $2}')" \
    nice -n 5 cargo build --locked --profile dist --target x86_64-unknown-linux-gnu \
    -p credlock-node -p credlock-capi
else
  echo "release: maturin's zig wrappers not found; cargo zigbuild compiles the C-using crates again" >&2
  timed node-and-capi nice -n 5 cargo zigbuild --locked --profile dist \
    --target x86_64-unknown-linux-gnu.2.17 -p credlock-node -p credlock-capi
fi
unset CARGO_TARGET_DIR
# Linked against glibc 2.17 at most: the addon's newest glibc symbol version.
newest_glibc="$(objdump -T "$gnu_out/libcredlock_node.so" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n | tail -n1)"
echo "release: the Node addon needs $newest_glibc at most"
case "$newest_glibc" in GLIBC_2.1[0-7] | GLIBC_2.[0-9] | GLIBC_2.[0-9].*) ;; *) echo "release: the Node addon needs $newest_glibc, newer than manylinux2014's 2.17" >&2; exit 1 ;; esac
node host/node/scripts/pack.mjs "$gnu_out/libcredlock_node.so" "$dist"

# ---- The Go module, as a module proxy serves it (README, "Go").
gostage="$(mktemp -d)"
mkdir -p "$gostage/include" "$gostage/lib/linux_amd64"
for f in host/go/*.go host/go/go.mod host/go/README.md; do
  [ "$(basename "$f")" = link.go ] || cp "$f" "$gostage/"
done
cp host/capi/include/credlock.h "$gostage/include/"
# Symbols stay (the linker needs them); debug info goes.
strip --strip-debug -o "$gostage/lib/linux_amd64/libcredlock.a" "$gnu_out/libcredlock.a"
# What Rust's standard library needs from the C library (rustc --print native-static-libs
# for x86_64-unknown-linux-gnu).
sed 's|@NATIVE_LIBS@|-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc|' host/go/release/link_release.go.in >"$gostage/link_release.go"
cp host/go/release/unsupported.go.in "$gostage/unsupported.go"
python3 scripts/gomodzip.py "$gostage" "$dist/goproxy" "$version" "$epoch"
rm -rf "$gostage"

# ---- Checksums and sizes.
addon_size=$(stat -c %s "$gnu_out/libcredlock_node.so")
(
  cd "$dist"
  find . -type f ! -name SHA256SUMS ! -name SIZES | sed 's|^\./||' | sort | xargs sha256sum >SHA256SUMS
  {
    echo "# credlock $version: artifact sizes (bytes) and build wall times (seconds)"
    echo "component-sha256 $component_sha256"
    printf '%s %s\n' "cli-binary" "$(stat -c %s "$cli")"
    printf '%s %s\n' "python-extension" "$(python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(max(i.file_size for i in z.infolist() if i.filename.endswith(".so")))' "$wheel")"
    printf '%s %s\n' "node-addon" "$addon_size"
    printf '%s %s\n' "libcredlock.a" "$(python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(max(i.file_size for i in z.infolist() if i.filename.endswith(".a")))' goproxy/credlock.dev/credlock/@v/v"$version".zip)"
    find . -maxdepth 1 -type f \( -name '*.gz' -o -name '*.whl' -o -name '*.tgz' \) -printf '%f %s\n' | sort
    printf '%s %s\n' "go-module.zip" "$(stat -c %s goproxy/credlock.dev/credlock/@v/v"$version".zip)"
    sed 's/^/build-seconds-/' "$timings"
  } >SIZES
)
cat "$dist/SIZES"
echo "release: dist/ holds credlock $version"
