#!/usr/bin/env python3
"""Completes maturin's sdist of the Python package so that it builds from source.

maturin packs the extension's crate and its path dependencies (host/, core/, core/keyslots),
but host/build.rs also compiles the component from core/component against wit/, which no
crate depends on (build.rs runs cargo for wasm32-wasip2), and maturin accepts no include
pattern outside host/python. This adds those files (as git tracks them) and the component's
crate to the sdist's workspace members, in place. Used by scripts/release.sh.

    python3 scripts/sdist_complete.py SDIST.tar.gz
"""

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

EXTRA = ["core/component", "wit", "host/precompile"]


def main() -> None:
    sdist = Path(sys.argv[1])
    repo = Path(__file__).resolve().parent.parent
    with tarfile.open(sdist, "r:gz") as t:
        members = [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]
    top = members[0][0].name.split("/")[0]
    names = {m.name for m, _ in members}
    manifest = f"{top}/Cargo.toml"
    out = []
    for m, data in members:
        if m.name == manifest:
            text = data.decode()
            match = re.search(r'^members = \[(.*)\]$', text, re.M)
            if not match:
                sys.exit("sdist_complete: the sdist's Cargo.toml lists no workspace members")
            listed = [s.strip().strip('"') for s in match.group(1).split(",") if s.strip()]
            listed += [d for d in ["core/component", "host/precompile"] if d not in listed]
            text = text.replace(match.group(0), "members = [" + ", ".join(f'"{d}"' for d in listed) + "]")
            data = text.encode()
            m.size = len(data)
        out.append((m, data))
    template = next(m for m, _ in members if m.isfile())
    tracked = subprocess.run(["git", "ls-files", "-z", *EXTRA], cwd=repo, check=True, capture_output=True).stdout
    added = 0
    for rel in sorted(p for p in tracked.decode().split("\0") if p):
        name = f"{top}/{rel}"
        if name in names:
            continue
        data = (repo / rel).read_bytes()
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), template.mtime, 0o644
        out.append((info, data))
        added += 1
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for m, data in out:
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    sdist.write_bytes(buf.getvalue())
    print(f"sdist_complete: {sdist.name}: added {added} files ({', '.join(EXTRA)}) and the core/component and host/precompile members")


main()
