#!/usr/bin/env python3
"""Writes a Go module as a module proxy serves it (the GOPROXY protocol, `go help goproxy`):
    OUT/<module>/@v/list, v<V>.info, v<V>.mod, v<V>.zip
from the module's files in DIR (its go.mod names the module). A directory served this way
over HTTPS (or as file://) is all `go get <module>@v<V>` needs. Used by scripts/release.sh.

    python3 scripts/gomodzip.py DIR OUT VERSION EPOCH_SECONDS
"""

import datetime
import json
import re
import sys
import zipfile
from pathlib import Path

# The go command's limits for a module zip (golang.org/x/mod/zip): exceeding one makes
# `go get` refuse the module, so refuse to write it.
MAX_ZIP_FILE = 500 << 20
MAX_GO_MOD = 16 << 20


def main() -> None:
    src, out, version, epoch = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version):
        sys.exit(f"gomodzip: version {version!r} is not MAJOR.MINOR.PATCH")
    gomod = (src / "go.mod").read_bytes()
    if len(gomod) > MAX_GO_MOD:
        sys.exit("gomodzip: go.mod is over the go command's 16 MiB limit")
    m = re.search(rb"^module\s+(\S+)", gomod, re.M)
    if not m:
        sys.exit(f"gomodzip: {src / 'go.mod'} names no module")
    module = m.group(1).decode()
    # Module paths with upper case letters are escaped ("!x") in proxy URLs; ours has none.
    if module != module.lower():
        sys.exit(f"gomodzip: {module} has upper case letters, which this script does not escape")
    tag = f"v{version}"
    at = out / module / "@v"
    at.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    prefix = f"{module}@{tag}/"
    files = sorted(p for p in src.rglob("*") if p.is_file())
    with zipfile.ZipFile(at / f"{tag}.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            rel = p.relative_to(src).as_posix()
            info = zipfile.ZipInfo(prefix + rel, date_time=stamp.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, p.read_bytes())
    if (at / f"{tag}.zip").stat().st_size > MAX_ZIP_FILE:
        sys.exit("gomodzip: the module zip is over the go command's 500 MiB limit")
    (at / f"{tag}.mod").write_bytes(gomod)
    (at / f"{tag}.info").write_text(
        json.dumps({"Version": tag, "Time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}) + "\n"
    )
    (at / "list").write_text(tag + "\n")
    print(f"gomodzip: {module}@{tag}: {len(files)} files, {(at / f'{tag}.zip').stat().st_size} bytes")


main()
