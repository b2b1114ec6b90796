"""The wasmtime embedding: the credlock component, its `platform` imports wired to the Python
platform (`_platform.Platform`), and a cache of the compiled artifact.

One engine, one compiled component and one linker per process (wasmtime-py has no component
`InstancePre`; the linker is the reusable part). Each `credlock.Store` gets its own wasmtime
store and instance, created on first use and reused for every call until a trap.

The host functions are registered once, so they find the calling store's platform through a
thread-local set around each call into the component (calls are synchronous: imports run on
the calling thread). Resources (`lock-guard`, `sealing-key`) are integers (`rep`) into a
process-wide registry, so their destructors need no context.

wasmtime-py (50) converts Python values to component values by their Python types. For a
`result` or `variant` whose cases it cannot tell apart by type (`result<blob, file-error>`:
`blob` is `present(list<u8>) | absent` and `absent` is represented by `None`, which makes
every value look like the ok case), it cannot express some cases at all. We add one thing to
its lowering: a `Case(tag, payload)` value names the case explicitly. Every variant this host
returns is built that way, so no return value depends on the type-guessing.

Two more additions only make it faster (same values): `list<u8>` is converted in bulk instead
of byte by byte, and type descriptions are looked up once instead of on every call (type
objects remember their cases and fields; host functions and exports keep their signatures).
Each addition checks for the wasmtime-py internals it relies on; pyproject pins wasmtime 50.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import wasmtime
from wasmtime import component as wc

from . import _files
from ._layout import ensure_private_dir
from ._ptypes import FileError, IoError, KeyError_, LockError, SealError, TransportError

PACKAGE = "credlock:store"
VERSION = "0.1.0"


def _iface(name: str) -> str:
    return f"{PACKAGE}/{name}@{VERSION}"


# ----- the explicit-case extension to wasmtime-py's variant lowering -----


@dataclass(frozen=True)
class Case:
    """A variant, option or result value with its case named explicitly."""

    tag: str
    payload: Any = None


def _install_case_lowering() -> None:
    from wasmtime import _ffi as ffi
    from wasmtime.component import _types as wt

    cls = getattr(wt, "VariantLikeType", None)
    if cls is None or not hasattr(cls, "_lower") or not hasattr(cls, "_cases"):
        raise ImportError(
            "credlock needs wasmtime-py's component value conversion as of version 50 "
            f"(found {getattr(wasmtime, '__version__', 'unknown')}); install wasmtime>=50,<51"
        )
    if getattr(cls._lower, "_credlock_case", False):
        return
    original = cls._lower

    def _lower(self: Any, store: Any, val: Any) -> Tuple[str, Any]:
        if not isinstance(val, Case):
            lowered: Tuple[str, Any] = original(self, store, val)
            return lowered
        for name, ty in self._cases():
            if name != val.tag:
                continue
            if ty is None:
                return (name, None)
            raw = ffi.wasmtime_component_val_t()
            ty.convert_to_c(store, val.payload, ctypes.pointer(raw))
            return (name, ffi.wasmtime_component_val_new(ctypes.byref(raw)))
        raise ValueError(f"no case {val.tag!r} in this variant")

    _lower._credlock_case = True  # type: ignore[attr-defined]
    setattr(cls, "_lower", _lower)


def _install_fast_bytes() -> None:
    """Convert `list<u8>` in bulk. wasmtime-py converts element by element in Python (~1 µs
    a byte, each way), which made a 330-byte store cost ~4 ms a call. Same values, same
    ownership rules: a list of `u8` values is an array of `wasmtime_component_val_t` whose
    `kind` is U8 and whose union holds the byte, so we fill that array with two strided
    slice assignments and read it back with one strided slice."""
    from wasmtime import _ffi as ffi
    from wasmtime.component import _types as wt

    lt = wt.ListType
    if getattr(lt.convert_to_c, "_credlock_fast", False):
        return
    val_t = ffi.wasmtime_component_val_t
    size = ctypes.sizeof(val_t)
    kind_off = val_t.kind.offset
    byte_off = val_t.of.offset + type(val_t().of).u8.offset
    u8_kind = ffi.WASMTIME_COMPONENT_U8.value
    list_kind = ffi.WASMTIME_COMPONENT_LIST
    if val_t.kind.size != 1:
        return  # an unexpected layout: keep the slow, generic path
    slow_to, slow_from = lt.convert_to_c, lt.convert_from_c

    def convert_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        if not (self._is_bytes() and isinstance(val, (bytes, bytearray))):
            return slow_to(self, store, val, ptr)
        n = len(val)
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, n)
        if n:
            buf = bytearray(n * size)
            buf[kind_off::size] = bytes([u8_kind]) * n
            buf[byte_off::size] = val
            ctypes.memmove(raw.data, (ctypes.c_char * len(buf)).from_buffer(buf), len(buf))
        ptr.contents.kind = list_kind
        ptr.contents.of.list = raw

    def convert_from_c(self: Any, c: Any) -> Any:
        if not self._is_bytes():
            return slow_from(self, c)
        assert c.kind == list_kind.value
        try:
            n = c.of.list.size
            if n == 0:
                return b""
            return ctypes.string_at(c.of.list.data, n * size)[byte_off::size]
        finally:
            ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))

    convert_to_c._credlock_fast = True  # type: ignore[attr-defined]
    setattr(lt, "convert_to_c", convert_to_c)
    setattr(lt, "convert_from_c", convert_from_c)


def _install_type_memos() -> None:
    """Remember what a component type object says about itself.

    wasmtime-py asks the C API for a type's cases, fields, payloads and parameters on every
    conversion (~70 calls of `valtype_from_ptr` per `token` call). A type object describes an
    immutable type, and the values these properties return own their C pointers, so caching
    them on the object changes nothing but the time."""
    from wasmtime.component import _types as wt

    props = [
        (wt.FuncType, "params"), (wt.FuncType, "result"),
        (wt.VariantType, "cases"), (wt.RecordType, "fields"),
        (wt.ResultType, "ok"), (wt.ResultType, "err"),
        (wt.OptionType, "payload"), (wt.ListType, "element"),
        (wt.TupleType, "elements"),
    ]  # fmt: skip
    for cls, name in props:
        prop = cls.__dict__.get(name)
        if not isinstance(prop, property) or prop.fget is None:
            continue
        if getattr(prop.fget, "_credlock_memo", False):
            continue

        def make(fget: Callable[[Any], Any], key: str) -> property:
            def getter(self: Any) -> Any:
                d = self.__dict__
                if key not in d:
                    d[key] = fget(self)
                return d[key]

            getter._credlock_memo = True  # type: ignore[attr-defined]
            return property(getter, doc=fget.__doc__)

        setattr(cls, name, make(prop.fget, f"_credlock_{name}"))

    tagged = wt.VariantLikeType._tagged
    if not getattr(tagged, "_credlock_memo", False):

        def _tagged(self: Any) -> bool:
            d = self.__dict__
            if "_credlock_tagged" not in d:
                d["_credlock_tagged"] = tagged(self)
            return d["_credlock_tagged"]  # type: ignore[no-any-return]

        _tagged._credlock_memo = True  # type: ignore[attr-defined]
        setattr(wt.VariantLikeType, "_tagged", _tagged)


_install_case_lowering()  # required: without it some results cannot be expressed
for _speedup in (_install_fast_bytes, _install_type_memos):
    try:
        _speedup()
    except (AttributeError, TypeError, ImportError):
        pass  # another wasmtime-py layout: the generic path is slower, not wrong


# ----- host functions with their types looked up once -----


class _HostFunc:
    __slots__ = ("func", "fty", "params", "result")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.fty: Any = None
        self.params: Optional[List[Any]] = None
        self.result: Any = None


_HOST_FUNCS: Dict[int, _HostFunc] = {}
_HOST_FUNC_IDS = itertools.count(1)


def _make_host_callback() -> Tuple[Any, Any]:
    """The same thing as wasmtime-py's `func_impl` (component/_linker.py), except that the
    function's type is cloned and kept on first use instead of being re-read on every call."""
    from wasmtime import _ffi as ffi
    from wasmtime.component import _types as wt
    from wasmtime.component._enter import catch_exceptions

    @ffi.wasmtime_component_func_callback_t
    def callback(idx, context, ty_raw, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
        def run(store: Any) -> None:
            entry = _HOST_FUNCS[idx or 0]
            if entry.params is None:
                fty = wt.FuncType._from_ptr(ffi.wasmtime_component_func_type_clone(ty_raw))
                entry.result = fty.result
                entry.params = [ty for _, ty in fty.params]
                entry.fty = fty
            params = entry.params
            assert len(params) == nargs
            out = entry.func(store, *[ty.convert_from_c(args[i]) for i, ty in enumerate(params)])
            if entry.result is None:
                assert out is None and nresults == 0
            else:
                entry.result.convert_to_c(store, out, results)

        return catch_exceptions(context, run)

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    def finalize(idx):  # type: ignore[no-untyped-def]
        _HOST_FUNCS.pop(idx or 0, None)

    return callback, finalize


try:
    _HOST_CALLBACK: Any
    _HOST_FINALIZE: Any
    _HOST_CALLBACK, _HOST_FINALIZE = _make_host_callback()
except (AttributeError, TypeError, ImportError):
    _HOST_CALLBACK = _HOST_FINALIZE = None  # use wasmtime-py's own `add_func`


def _add_func(inst: wc.LinkerInstance, name: str, func: Callable[..., Any]) -> None:
    from wasmtime import _ffi as ffi

    if _HOST_CALLBACK is None:
        inst.add_func(name, func)
        return
    inst._assert_not_locked()
    idx = next(_HOST_FUNC_IDS)
    _HOST_FUNCS[idx] = _HostFunc(func)
    raw = name.encode("utf-8")
    error = ffi.wasmtime_component_linker_instance_add_func(
        inst.ptr(), ctypes.create_string_buffer(raw), len(raw), _HOST_CALLBACK, idx, _HOST_FINALIZE
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def ok(payload: Any = None) -> Case:
    return Case("ok", payload)


def err(payload: Any) -> Case:
    return Case("err", payload)


def _record(**fields: Any) -> wc.Record:
    r = wc.Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def _io(e: IoError) -> Case:
    return Case(e.kind, e.detail)


def _file_error(e: FileError) -> Case:
    if e.io is not None:
        return Case("io", _io(e.io))
    return Case("too-large", e.too_large)


def _key_error(e: KeyError_) -> Case:
    if e.kind == "io":
        assert isinstance(e.payload, IoError)
        return Case("io", _io(e.payload))
    return Case(e.kind, e.payload)


# ----- resources -----

LOCK_GUARD_TYPE = 1
SEALING_KEY_TYPE = 2


class _Registry:
    """rep -> (object, owner platform). Process-wide, thread-safe."""

    def __init__(self) -> None:
        self._items: Dict[int, Tuple[Any, Any]] = {}
        self._next = 1
        self._lock = threading.Lock()

    def add(self, obj: Any, owner: Any) -> int:
        with self._lock:
            while True:
                rep = self._next
                self._next = self._next + 1 if self._next < 0xFFFFFFFF else 1
                if rep not in self._items:
                    break
            self._items[rep] = (obj, owner)
        owner._reps.add(rep)
        return rep

    def get(self, rep: int) -> Any:
        with self._lock:
            item = self._items.get(rep)
        if item is None:
            raise RuntimeError("unknown resource handle")  # a host/guest bug: trap
        return item[0]

    def drop(self, rep: int) -> Optional[Any]:
        with self._lock:
            item = self._items.pop(rep, None)
        if item is None:
            return None
        obj, owner = item
        owner._reps.discard(rep)
        if hasattr(obj, "release"):
            obj.release()
        return obj


RESOURCES = _Registry()
_current = threading.local()


def _platform() -> Any:
    p = getattr(_current, "platform", None)
    if p is None:
        raise RuntimeError("credlock host function called outside a store call")
    return p


def _rep(store: Any, handle: Any) -> int:
    if isinstance(handle, wc.ResourceHost):
        return int(handle.rep)
    return int(handle.to_host(store).rep)


# ----- the imports -----


class HostAbort(Exception):
    """A BaseException (KeyboardInterrupt, SystemExit) raised inside a host function. It is
    turned into a trap (wasmtime-py only catches Exception; anything else escaping a ctypes
    callback would leave the call's results unset), and re-raised by the caller."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(type(original).__name__)
        self.original = original


def _guarded(f: Callable[..., Any]) -> Callable[..., Any]:
    def host_function(*args: Any) -> Any:
        try:
            return f(*args)
        except Exception:
            raise
        except BaseException as e:
            raise HostAbort(e) from None

    return host_function


def _define_imports(linker: wc.Linker) -> None:
    with linker.root() as root:
        with root.add_instance(_iface("types")):
            pass

        with root.add_instance(_iface("locks")) as inst:
            inst.add_resource(
                "lock-guard",
                wc.ResourceType.host(LOCK_GUARD_TYPE),
                _guarded(lambda store, rep: RESOURCES.drop(rep)),
            )

            def acquire(store: Any, target: Any, mode: str, timeout_ms: int) -> Case:
                p = _platform()
                try:
                    guard = p.acquire(target, mode, timeout_ms)
                except LockError as e:
                    if e.io is not None:
                        return err(Case("io", _io(e.io)))
                    return err(Case("timeout", e.timeout_ms))
                rep = RESOURCES.add(guard, p)
                return ok(wc.ResourceHost.own(rep, LOCK_GUARD_TYPE))

            def release(store: Any, handle: Any) -> None:
                RESOURCES.get(_rep(store, handle)).release()

            _add_func(inst, "acquire", _guarded(acquire))
            _add_func(inst, "[method]lock-guard.release", _guarded(release))

        with root.add_instance(_iface("files")) as inst:

            def read(store: Any, file: str) -> Case:
                try:
                    data = _platform().read(file)
                except FileError as e:
                    return err(_file_error(e))
                return ok(Case("absent") if data is None else Case("present", data))

            def replace(store: Any, file: str, contents: bytes) -> Case:
                try:
                    _platform().replace(file, contents)
                except FileError as e:
                    return err(_file_error(e))
                return ok()

            def remove(store: Any, file: str) -> Case:
                try:
                    _platform().remove(file)
                except FileError as e:
                    return err(_file_error(e))
                return ok()

            def quarantine(store: Any, file: str) -> Case:
                try:
                    return ok(_platform().quarantine(file))
                except FileError as e:
                    return err(_file_error(e))

            _add_func(inst, "read", _guarded(read))
            _add_func(inst, "replace", _guarded(replace))
            _add_func(inst, "remove", _guarded(remove))
            _add_func(inst, "quarantine", _guarded(quarantine))

        with root.add_instance(_iface("sealing")) as inst:
            inst.add_resource(
                "sealing-key",
                wc.ResourceType.host(SEALING_KEY_TYPE),
                _guarded(lambda store, rep: RESOURCES.drop(rep)),
            )

            def unlock(store: Any, key_id: bytes, slots: List[Any]) -> Case:
                p = _platform()
                try:
                    key = p.unlock(key_id, [(s.kind, s.data) for s in slots])
                except KeyError_ as e:
                    return err(_key_error(e))
                return ok(wc.ResourceHost.own(RESOURCES.add(key, p), SEALING_KEY_TYPE))

            def create(store: Any) -> Case:
                p = _platform()
                try:
                    key = p.create_key()
                except KeyError_ as e:
                    return err(_key_error(e))
                return ok(wc.ResourceHost.own(RESOURCES.add(key, p), SEALING_KEY_TYPE))

            def rekey(store: Any, slots: List[Any]) -> Case:
                p = _platform()
                try:
                    key = p.rekey([(s.kind, s.data) for s in slots])
                except KeyError_ as e:
                    return err(_key_error(e))
                return ok(wc.ResourceHost.own(RESOURCES.add(key, p), SEALING_KEY_TYPE))

            def add_slot(store: Any, handle: Any, kind: str) -> Case:
                key = RESOURCES.get(_rep(store, handle))
                try:
                    slot = _platform().add_slot(key, kind)
                except KeyError_ as e:
                    return err(_key_error(e))
                return ok(_record(kind=slot.kind, data=slot.data))

            def key_id(store: Any, handle: Any) -> bytes:
                return bytes(RESOURCES.get(_rep(store, handle)).id)

            def slots(store: Any, handle: Any) -> List[wc.Record]:
                key = RESOURCES.get(_rep(store, handle))
                return [_record(kind=s.kind, data=s.data) for s in key.slots]

            def seal(store: Any, handle: Any, nonce: bytes, aad: bytes, pt: bytes) -> Case:
                try:
                    return ok(RESOURCES.get(_rep(store, handle)).seal(nonce, aad, pt))
                except SealError as e:
                    return err(Case(e.kind))

            def open_(store: Any, handle: Any, nonce: bytes, aad: bytes, ct: bytes) -> Case:
                try:
                    return ok(RESOURCES.get(_rep(store, handle)).open(nonce, aad, ct))
                except SealError as e:
                    return err(Case(e.kind))

            _add_func(inst, "unlock", _guarded(unlock))
            _add_func(inst, "create", _guarded(create))
            _add_func(inst, "rekey", _guarded(rekey))
            _add_func(inst, "[method]sealing-key.key-id", _guarded(key_id))
            _add_func(inst, "[method]sealing-key.slots", _guarded(slots))
            _add_func(inst, "[method]sealing-key.seal", _guarded(seal))
            _add_func(inst, "[method]sealing-key.open", _guarded(open_))
            _add_func(inst, "[method]sealing-key.add-slot", _guarded(add_slot))

        with root.add_instance(_iface("token-endpoint")) as inst:

            def post(store: Any, request: Any) -> Case:
                try:
                    reply = _platform().post(
                        request.url,
                        request.body,
                        request.authorization,
                        getattr(request, "timeout-ms"),
                    )
                except TransportError as e:
                    return err(Case(e.kind, e.detail))
                return ok(
                    _record(status=reply.status, content_type=reply.content_type, body=reply.body)
                )

            _add_func(inst, "post", _guarded(post))

        with root.add_instance(_iface("clock")) as inst:
            _add_func(inst, "wall-ms", _guarded(lambda store: _platform().wall_ms()))
            _add_func(inst, "monotonic-ms", _guarded(lambda store: _platform().monotonic_ms()))

        with root.add_instance(_iface("random")) as inst:
            _add_func(inst, "fill", _guarded(lambda store, n: os.urandom(n)))


# ----- loading, with a cache of the compiled artifact -----


def wasm_path() -> Path:
    return Path(__file__).with_name("credlock.wasm")


@dataclass
class LoadStats:
    #: `cache` (deserialized a cached artifact) or `compiled`.
    source: str
    #: Where the artifact was read from or written to, if anywhere.
    cache_file: Optional[Path]
    seconds: float
    component_sha256: str


class Runtime:
    """The process's engine, compiled component and linker."""

    def __init__(self, cache_dir: Optional[Path]) -> None:
        started = time.perf_counter()
        path = wasm_path()
        try:
            wasm = path.read_bytes()
        except FileNotFoundError:
            from .errors import InternalError

            raise InternalError(
                f"the credlock component is missing ({path}); this installation of the credlock "
                "package was built without it: build it with host/python/prepare-wasm.sh (or "
                "`cargo build -p credlock-component --target wasm32-wasip2 --profile guest "
                "--target-dir target/guest`) and reinstall"
            ) from None
        sha = hashlib.sha256(wasm).hexdigest()
        self.engine = wasmtime.Engine()
        cache_file = _cache_file(cache_dir, sha) if cache_dir is not None else None
        component = _load_cached(self.engine, cache_file) if cache_file else None
        if component is not None:
            source = "cache"
        else:
            component = wc.Component(self.engine, wasm)
            source = "compiled"
            if cache_file is not None:
                try:
                    _write_cache(component, cache_file)
                except Exception:
                    cache_file = None  # a cache that cannot be written only costs speed
        self.component = component
        self.linker = wc.Linker(self.engine)
        # Rust's std makes the guest import WASI p2. It gets an empty context: no files, no
        # environment, no arguments. Everything real goes through credlock's own imports.
        self.linker.add_wasip2()
        _define_imports(self.linker)
        self._lock = threading.Lock()
        self.stats = LoadStats(source, cache_file, time.perf_counter() - started, sha)

    def instantiate(self) -> Tuple[wasmtime.Store, wc.Instance]:
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        with self._lock:
            instance = self.linker.instantiate(store, self.component)
        return store, instance


def _cache_file(cache_dir: Path, sha: str) -> Path:
    version = getattr(wasmtime, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as _v

            version = _v("wasmtime")
        except Exception:
            version = "unknown"
    machine = os.uname().machine
    return cache_dir / f"credlock-py-{sha[:16]}-wasmtime{version}-{machine}.cwasm"


def _load_cached(engine: wasmtime.Engine, path: Path) -> Optional[wc.Component]:
    """Load a cached artifact only if it is a regular file we own that nobody else can write,
    in a directory likewise: deserializing runs its machine code, so it must be exactly what
    we wrote. wasmtime itself checks the version and configuration recorded inside."""
    try:
        for p, want_dir in ((path.parent, True), (path, False)):
            st = os.lstat(p)
            kind_ok = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
            if not kind_ok or st.st_uid != os.getuid() or st.st_mode & 0o022:
                return None
        return wc.Component.deserialize_file(engine, os.fspath(path))
    except Exception:
        return None


def _write_cache(component: wc.Component, path: Path) -> None:
    ensure_private_dir(path.parent)
    _files.replace(path, bytes(component.serialize()))


_RUNTIME: Optional[Runtime] = None
_RUNTIME_LOCK = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime, loaded on first use. `CREDLOCK_CACHE_DIR` overrides where the
    compiled component is cached (`$XDG_CACHE_HOME/credlock`); set it to an empty string to
    disable the cache."""
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            from ._layout import default_cache_dir

            env = os.environ.get("CREDLOCK_CACHE_DIR")
            if env is not None:
                cache_dir = Path(env) if env else None
            else:
                cache_dir = default_cache_dir()
            try:
                _RUNTIME = Runtime(cache_dir)
            except Exception as e:
                from .errors import CredlockError, InternalError

                if isinstance(e, CredlockError):
                    raise
                raise InternalError(f"loading the credlock component: {e}") from e
        return _RUNTIME


#: The functions of the `store` export, by their WIT names.
EXPORTS = (
    "init", "put", "token", "refresh", "list", "delete", "info",
    "slots", "add-slot", "remove-slot", "rekey", "import-tokens", "recover", "quarantine",
)  # fmt: skip


class Instance:
    """One wasmtime store and component instance, bound to one platform."""

    def __init__(self, rt: Runtime, platform: Any) -> None:
        self.platform = platform
        self.store, instance = rt.instantiate()
        iface = instance.get_export_index(self.store, _iface("store"))
        if iface is None:
            raise RuntimeError("the component does not export credlock:store/store")
        self._funcs: Dict[str, wc.Func] = {}
        for name in EXPORTS:
            idx = instance.get_export_index(self.store, name, iface)
            f = instance.get_func(self.store, idx) if idx is not None else None
            if f is None:
                raise RuntimeError(f"the component does not export store.{name}")
            # Func.__call__ re-reads the function's type on every call; give this Func its
            # type once (an instance attribute shadowing the method; the memoised params and
            # result then stay with it).
            fty = f.type(self.store)
            setattr(f, "type", lambda store, _fty=fty: _fty)
            self._funcs[name] = f

    def call(self, name: str, *args: Any) -> Any:
        func = self._funcs[name]
        previous = getattr(_current, "platform", None)
        _current.platform = self.platform
        try:
            result = func(self.store, *args)
            func.post_return(self.store)
            return result
        finally:
            _current.platform = previous

    def close(self) -> None:
        """Tear down: release every resource the guest still held (after a trap)."""
        self.platform.release_all()
        try:
            self.store.close()
        except Exception:
            pass


def options(lock_timeout_ms: int, http_timeout_ms: int) -> wc.Record:
    return _record(lock_timeout_ms=lock_timeout_ms, http_timeout_ms=http_timeout_ms)
