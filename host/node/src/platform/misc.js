// credlock:store/clock, credlock:store/random, credlock:store/types, and the WASI p2
// interfaces Rust's std makes the component import.
import crypto from 'node:crypto';

export const clock = {
  /** Unix time in milliseconds. */
  wallMs: () => BigInt(Date.now()),
  /** Milliseconds since this process started; never goes backwards. */
  monotonicMs: () => BigInt(Math.floor(performance.now())),
};

export const random = {
  /** `len` bytes from the OS's CSPRNG. */
  fill: (len) => new Uint8Array(crypto.randomBytes(len)),
};

export const types = {};

// ---- WASI p2: nothing granted ----
// The component reaches the world only through credlock's own imports. Rust's std still
// imports these; like the Rust host's empty WasiCtx, they grant nothing: no environment,
// no stdin, no exit (a call traps instead of ending the embedding process), and stdout /
// stderr are sinks (a panic message is dropped, never printed: it could quote data).
class WasiError {
  toDebugString() {
    return 'error';
  }
}
class Pollable {
  ready() {
    return true;
  }
  block() {}
}
class InputStream {}
class OutputStream {
  checkWrite() {
    return 1n << 20n;
  }
  write(_contents) {}
  blockingWriteAndFlush(_contents) {}
  flush() {}
  blockingFlush() {}
  subscribe() {
    return new Pollable();
  }
}
class TerminalInput {}
class TerminalOutput {}

function refuse(what) {
  return () => {
    throw new Error(`credlock: the component may not use ${what}`);
  };
}

export function wasiImports() {
  const sink = new OutputStream();
  return {
    'wasi:cli/environment@0.2.6': {
      getEnvironment: () => [],
      getArguments: () => [],
      initialCwd: () => undefined,
    },
    'wasi:cli/exit@0.2.6': { exit: refuse('wasi:cli/exit') },
    'wasi:cli/stdin@0.2.6': { getStdin: refuse('stdin') },
    'wasi:cli/stdout@0.2.6': { getStdout: () => sink },
    'wasi:cli/stderr@0.2.6': { getStderr: () => sink },
    'wasi:cli/terminal-input@0.2.6': { TerminalInput },
    'wasi:cli/terminal-output@0.2.6': { TerminalOutput },
    'wasi:cli/terminal-stdin@0.2.6': { getTerminalStdin: () => undefined },
    'wasi:cli/terminal-stdout@0.2.6': { getTerminalStdout: () => undefined },
    'wasi:cli/terminal-stderr@0.2.6': { getTerminalStderr: () => undefined },
    'wasi:io/error@0.2.6': { Error: WasiError },
    'wasi:io/poll@0.2.6': { Pollable, poll: (list) => new Uint32Array(list.map((_, i) => i)) },
    'wasi:io/streams@0.2.6': { InputStream, OutputStream },
    'wasi:random/insecure-seed@0.2.6': {
      insecureSeed: () => {
        const b = crypto.randomBytes(16);
        return [b.readBigUInt64LE(0), b.readBigUInt64LE(8)];
      },
    },
  };
}
