"""Build glue: put the credlock component into the package.

The component is built by cargo (see prepare-wasm.sh). Before setuptools runs, this copies
the newest build into src/credlock/credlock.wasm, from the first of:

1. $CREDLOCK_WASM, if set;
2. ../../target/guest/wasm32-wasip2/guest/credlock_component.wasm (this repository's build);

and then requires src/credlock/credlock.wasm to exist (an sdist carries it), failing with
instructions otherwise. Everything else is in pyproject.toml.
"""

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
DEST = HERE / "src" / "credlock" / "credlock.wasm"
CARGO_OUTPUT = (
    HERE.parent.parent / "target" / "guest" / "wasm32-wasip2" / "guest" / "credlock_component.wasm"
)


def _bring_in_wasm() -> None:
    env = os.environ.get("CREDLOCK_WASM")
    if env:
        source = Path(env)
        if not source.is_file():
            sys.exit(f"error: CREDLOCK_WASM={env} is not a file")
    elif CARGO_OUTPUT.is_file():
        source = CARGO_OUTPUT
    else:
        source = None
    if source is not None:
        data = source.read_bytes()
        if data[:4] != b"\0asm":
            sys.exit(f"error: {source} is not a WebAssembly file")
        if not DEST.is_file() or DEST.read_bytes() != data:
            shutil.copyfile(source, DEST)
    if not DEST.is_file():
        sys.exit(
            "error: the credlock component is missing: no src/credlock/credlock.wasm and no "
            f"{CARGO_OUTPUT}.\n"
            "Build it first: bash host/python/prepare-wasm.sh (runs `cargo build -p "
            "credlock-component --target wasm32-wasip2 --profile guest --target-dir "
            "target/guest` and copies the result), or set CREDLOCK_WASM=/path/to/credlock.wasm."
        )


_bring_in_wasm()
setup()
