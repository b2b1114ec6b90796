//! The bindings' code for the store's operations, generated from their one declaration: the
//! WIT (`wit/store.wit`, interface `store`). For each operation the component exports, this
//! test renders what every layer between the component and a user holds, and compares it
//! with the committed files:
//!
//! - the Rust host: `Credlock`'s method (the component call, and the same on the native core)
//!   and `Store`'s (`host/src/operations.rs`);
//! - the C ABI's function (`host/capi/src/operations.rs`, and through cbindgen credlock.h);
//! - Python: the native module's method (`host/python/rust/lib.rs`), its stub (`.pyi`) and
//!   `Store`'s method with its `_async` twin (`_operations.py`);
//! - Node: the addon's method with its `Async` twin (`host/node/native/src/operations.rs`),
//!   the class's (`index.js`) and their declarations (`index.d.ts`);
//! - Go: the `Store` method (`host/go/operations.go`).
//!
//! So an operation is its WIT declaration, its logic in the core and the guest export that
//! adapts one to the other (`core/component`); everything else follows from
//! `CREDLOCK_BLESS=1 cargo test -p credlock-surface` (then `cargo build -p
//! credlock-capi` for credlock.h). The conventions every binding follows, per WIT type, are
//! written once below: strings and numbers are positional; a `bool` is optional and false by
//! default (a keyword in Python, a field of an options object in Node); a record result is
//! the binding's declaration of that record (`declarations.rs` checks its fields), a list of
//! them a list.
//!
//! Operations whose shape the conventions do not cover (a bare `bool` or `string` result,
//! which each C result names; a secret argument; a callback) are written by hand in every
//! binding and listed in [`BY_HAND`] with the reason; `parity.rs` checks that every one exists
//! everywhere.

use credlock_surface::generated::{self, lower_first, rustfmt, wrap, Target};
use credlock_surface::names::{camel, go_name, snake, Record, RECORDS};

/// Operations written by hand in every binding, and why the conventions do not cover them.
const BY_HAND: &[(&str, &str)] = &[
    ("init", "a bare bool result, named `created` in C and Go"),
    (
        "put",
        "the token response is JSON text, a dict or bytes in each binding",
    ),
    (
        "token",
        "seconds in the bindings, milliseconds in the WIT; the string alone in Python",
    ),
    (
        "refresh",
        "a refused token is hashed in the binding, never sent over",
    ),
    (
        "list",
        "`list` is a WIT keyword (`%list`) and a Python builtin",
    ),
    (
        "login",
        "a prompt callback, and a request object of options",
    ),
    (
        "logout",
        "the report's `revocation` variant is flattened differently in each binding",
    ),
    ("delete", "a bare bool result, named `deleted` in C and Go"),
    (
        "attachment",
        "an optional string result (`{\"value\": ...}` in C)",
    ),
    (
        "set-attachment",
        "an optional value that removes the attachment",
    ),
    (
        "slots",
        "the host lists slots without their wrapped keys (`SlotInfo`)",
    ),
    ("add-slot", "a new passphrase is a secret argument"),
    ("remove-slot", "its result is `SlotInfo`s"),
    (
        "import-tokens",
        "the source is JSON text, a dict or bytes; the options are keywords",
    ),
    (
        "quarantine",
        "a bare string result, named `quarantined_as` in C",
    ),
    (
        "export-sealed",
        "for `credlock migrate` inside the host only",
    ),
    (
        "adopt-sealed",
        "for `credlock migrate` inside the host only",
    ),
];

const WIDTH: usize = 96;

/// A parameter's WIT type, as far as the conventions go.
#[derive(Clone, Copy, PartialEq)]
enum Param {
    Bool,
    U32,
    /// A string; a `tenant` is checked as one everywhere (`invalid-tenant`).
    Text,
}

/// A result: one record, or a list of them.
struct Ret {
    record: &'static Record,
    list: bool,
    /// The record's fields, as the C ABI's JSON names them.
    fields: Vec<String>,
}

struct Operation {
    /// `pending_logins`.
    snake: String,
    doc: String,
    params: Vec<(String, Param)>,
    ret: Ret,
}

fn operations() -> Vec<Operation> {
    use wit_parser::{Resolve, Type, TypeDefKind};
    let mut resolve = Resolve::default();
    resolve
        .push_dir(credlock_surface::root().join("wit"))
        .expect("wit/ parses");
    let store = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some("store"))
        .map(|(_, i)| i)
        .expect("interface store in wit/");
    let record = |t: &Type| -> Option<(&'static Record, Vec<String>)> {
        let Type::Id(id) = t else { return None };
        let def = &resolve.types[*id];
        let TypeDefKind::Record(r) = &def.kind else {
            return None;
        };
        let name = def.name.as_deref()?;
        let row = RECORDS
            .iter()
            .find(|r| r.wit == name)
            .unwrap_or_else(|| panic!("record {name} is in no row of RECORDS (names.rs)"));
        Some((row, r.fields.iter().map(|f| snake(&f.name)).collect()))
    };
    let mut all = Vec::new();
    for (name, f) in &store.functions {
        assert!(
            f.params.first().is_some_and(|p| p.name == "opts"),
            "store.{name} does not take `opts: options` first"
        );
        assert!(
            BY_HAND.iter().filter(|(n, _)| n == name).count() <= 1,
            "{name} is listed twice in BY_HAND"
        );
        if BY_HAND.iter().any(|(n, _)| n == name) {
            continue;
        }
        let unsupported = |what: String| -> ! {
            panic!(
                "store.{name}: {what}, which the generated bindings have no convention for: \
                 add one (host/surface/tests/operations.rs), or write it by hand in every binding and \
                 list it in BY_HAND"
            )
        };
        let params = f.params[1..]
            .iter()
            .map(|p| {
                let ty = match p.ty {
                    Type::Bool => Param::Bool,
                    Type::U32 => Param::U32,
                    Type::String => Param::Text,
                    ref other => unsupported(format!("parameter {} is a {other:?}", p.name)),
                };
                (snake(&p.name), ty)
            })
            .collect();
        // result<T, store-error>
        let ok = match f.result {
            Some(Type::Id(id)) => match &resolve.types[id].kind {
                TypeDefKind::Result(r) => r.ok,
                _ => None,
            },
            _ => None,
        }
        .unwrap_or_else(|| unsupported("its result is not result<T, store-error>".into()));
        // A record, or a list of them.
        let (element, list) = match ok {
            Type::Id(id) => match &resolve.types[id].kind {
                TypeDefKind::List(t) => (*t, true),
                _ => (ok, false),
            },
            _ => (ok, false),
        };
        let (record, fields) = record(&element).unwrap_or_else(|| {
            unsupported("it returns neither a record nor a list of them (name a bare value: return a record)".into())
        });
        let ret = Ret {
            record,
            list,
            fields,
        };
        let doc = f
            .docs
            .contents
            .as_deref()
            .unwrap_or_else(|| unsupported("it has no doc comment".into()))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        all.push(Operation {
            snake: snake(name),
            doc,
            params,
            ret,
        });
    }
    for (name, why) in BY_HAND {
        assert!(
            store.functions.contains_key(*name),
            "BY_HAND lists {name} ({why}), which wit/store.wit no longer exports"
        );
    }
    assert!(
        all.len() >= 4,
        "the generator should cover info, rekey, recover, pending-logins"
    );
    all
}

// ----- the Rust host: Credlock and Store -----

fn rust_param(p: Param) -> &'static str {
    match p {
        Param::Bool => "bool",
        Param::U32 => "u32",
        Param::Text => "&str",
    }
}

fn host(ops: &[Operation]) -> String {
    let mut credlock = Vec::new();
    let mut store = Vec::new();
    for op in ops {
        let params: String = op
            .params
            .iter()
            .map(|(n, t)| format!(", {n}: {}", rust_param(*t)))
            .collect();
        let args: Vec<&str> = op.params.iter().map(|(n, _)| n.as_str()).collect();
        let args = args.join(", ");
        let wasm_args: String = op.params.iter().map(|(n, _)| format!(", {n}")).collect();
        let ty = op.ret.record.rust;
        let (ret, convert) = if op.ret.list {
            (
                format!("Vec<{ty}>"),
                format!("|v| v.into_iter().map({ty}::from).collect()"),
            )
        } else {
            (ty.to_owned(), format!("{ty}::from"))
        };
        credlock.extend(wrap(&op.doc, "    /// ", WIDTH));
        credlock.push(format!(
            "    pub fn {}(&mut self{params}) -> Result<{ret}, Error> {{",
            op.snake
        ));
        credlock.push("        self.call(".into());
        credlock.push(format!(
            "            |i, s, o| i.credlock_store_store().call_{}(s, *o{wasm_args}),",
            op.snake
        ));
        credlock.push(format!("            |s| s.{}({args}),", op.snake));
        credlock.push(format!("            {convert},"));
        credlock.push("        )".into());
        credlock.push("    }".into());
        credlock.push(String::new());
        store.extend(wrap(&op.doc, "    /// ", WIDTH));
        store.push(format!(
            "    pub fn {}(&self{params}) -> Result<{ret}, Error> {{",
            op.snake
        ));
        store.push(format!("        self.with(|c| c.{}({args}))", op.snake));
        store.push("    }".into());
        store.push(String::new());
    }
    credlock.pop();
    store.pop();
    format!(
        "{HEADER_RS}
//! The store's operations that follow the bindings' conventions, on [`Credlock`] and
//! [`Store`].

use crate::{{Credlock, Error, Store}};
use crate::{{{imports}}};

impl Credlock {{
{credlock}
}}

impl Store {{
{store}
}}
",
        imports = rust_imports(ops),
        credlock = credlock.join("\n"),
        store = store.join("\n"),
    )
}

const HEADER_RS: &str =
    "// Generated by host/surface/tests/operations.rs from wit/store.wit: edit the WIT (or the
// generator), then `CREDLOCK_BLESS=1 cargo test -p credlock-surface`.";

fn rust_imports(ops: &[Operation]) -> String {
    let mut names: Vec<&str> = ops.iter().map(|o| o.ret.record.rust).collect();
    names.sort();
    names.dedup();
    names.join(", ")
}

// ----- the C ABI -----

fn c(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    for op in ops {
        let fields: Vec<String> = op.ret.fields.iter().map(|f| format!("\"{f}\"")).collect();
        let shape = format!("{{{}}}", fields.join(", "));
        let shape = if op.ret.list {
            format!("`[{shape}, ...]`")
        } else {
            format!("`{shape}`")
        };
        out.extend(wrap(&format!("{} Result: {shape}.", op.doc), "/// ", WIDTH));
        out.push("///".into());
        out.push("/// # Safety".into());
        out.push(
            "/// `store` is a live handle; each string argument is NULL or NUL-terminated; `result` \
             and"
                .into(),
        );
        out.push("/// `error` are NULL or point to writable pointers.".into());
        out.push("#[no_mangle]".into());
        out.push(format!("pub unsafe extern \"C\" fn credlock_{}(", op.snake));
        out.push("    store: *const credlock_store,".into());
        for (n, t) in &op.params {
            let ty = match t {
                Param::Text => "*const c_char",
                _ => rust_param(*t),
            };
            out.push(format!("    {n}: {ty},"));
        }
        out.push("    result: *mut *mut c_char,".into());
        out.push("    error: *mut *mut c_char,".into());
        out.push(") -> c_int {".into());
        let args: Vec<&str> = op.params.iter().map(|(n, _)| n.as_str()).collect();
        out.push("    run(result, error, || {".into());
        for (n, t) in &op.params {
            if *t == Param::Text {
                let bad = if n == "tenant" {
                    "tenant_error"
                } else {
                    "options_error"
                };
                out.push(format!("        let {n} = arg({n}, \"{n}\", {bad})?;"));
            }
        }
        out.push(format!(
            "        json_out(&self::store(store)?.{}({})?)",
            op.snake,
            args.join(", ")
        ));
        out.push("    })".into());
        out.push("}".into());
        out.push(String::new());
    }
    out.pop();
    format!(
        "{HEADER_RS}
//! The store's operations that follow the bindings' conventions.

use crate::credlock_store;
use crate::ffi::*;
use std::ffi::{{c_char, c_int}};

{}
",
        out.join("\n")
    )
}

// ----- Python -----

fn pyo3(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    for op in ops {
        let params: String = op
            .params
            .iter()
            .map(|(n, t)| format!(", {n}: {}", rust_param(*t)))
            .collect();
        let args: Vec<&str> = op.params.iter().map(|(n, _)| n.as_str()).collect();
        out.push(format!(
            "    fn {}<'py>(&self, py: Python<'py>{params}) -> PyResult<Bound<'py, PyAny>> {{",
            op.snake
        ));
        out.push(format!(
            "        by_name(py, &call(py, || self.inner.{}({}))?)",
            op.snake,
            args.join(", ")
        ));
        out.push("    }".into());
        out.push(String::new());
    }
    out.pop();
    out.join("\n")
}

fn py_param(p: Param) -> &'static str {
    match p {
        Param::Bool => "bool",
        Param::U32 => "int",
        Param::Text => "str",
    }
}

fn pyi(ops: &[Operation]) -> String {
    ops.iter()
        .map(|op| {
            let params: String = op
                .params
                .iter()
                .map(|(n, t)| format!(", {n}: {}", py_param(*t)))
                .collect();
            let ret = if op.ret.list {
                "List[_Fields]"
            } else {
                "_Fields"
            };
            format!("    def {}(self{params}) -> {ret}: ...", op.snake)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn python(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    let mut types: Vec<&str> = ops.iter().map(|o| o.ret.record.python).collect();
    types.sort();
    types.dedup();
    for op in ops {
        // Numbers first, positional; then the bools, keywords defaulting to False.
        let mut params = String::new();
        let mut pass = Vec::new();
        for (n, t) in op.params.iter().filter(|(_, t)| *t != Param::Bool) {
            params.push_str(&format!(", {n}: {}", py_param(*t)));
            // PyO3 refuses a str that is not one; an int is checked here, as elsewhere.
            pass.push(match t {
                Param::U32 => format!("_whole({n})"),
                _ => n.clone(),
            });
        }
        for (n, _) in op.params.iter().filter(|(_, t)| *t == Param::Bool) {
            params.push_str(&format!(", {n}: bool = False"));
            pass.push(format!("bool({n})"));
        }
        let names: Vec<&str> = op
            .params
            .iter()
            .filter(|(_, t)| *t != Param::Bool)
            .chain(op.params.iter().filter(|(_, t)| *t == Param::Bool))
            .map(|(n, _)| n.as_str())
            .collect();
        let ty = op.ret.record.python;
        let ret = if op.ret.list {
            format!("List[{ty}]")
        } else {
            ty.to_owned()
        };
        let call = format!("self._n.{}({})", op.snake, pass.join(", "));
        out.push(format!("    def {}(self{params}) -> {ret}:", op.snake));
        let doc = wrap(&op.doc, "        ", WIDTH);
        if doc.len() == 1 {
            out.push(format!("        \"\"\"{}\"\"\"", doc[0].trim_start()));
        } else {
            out.push(format!("        \"\"\"{}", doc[0].trim_start()));
            out.extend(doc[1..].iter().cloned());
            out.push("        \"\"\"".into());
        }
        if op.ret.list {
            out.push(format!(
                "        return [_record(\"{ty}\", d) for d in {call}]"
            ));
        } else {
            out.push(format!("        return _record(\"{ty}\", {call})"));
        }
        out.push(String::new());
        out.push(format!(
            "    async def {}_async(self{params}) -> {ret}:",
            op.snake
        ));
        let args: String = names.iter().map(|n| format!(", {n}")).collect();
        out.push(format!(
            "        return await self._run(self.{}{args})",
            op.snake
        ));
        out.push(String::new());
    }
    out.pop();
    format!(
        "# Generated by host/surface/tests/operations.rs from wit/store.wit: edit the WIT (or the
# generator), then `CREDLOCK_BLESS=1 cargo test -p credlock-surface`.
\"\"\"The store's operations that follow the bindings' conventions: `Store` inherits them.\"\"\"

from __future__ import annotations

# As in `_store.py`: `typing` is never imported at run time (a one-shot process pays for it).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, TypeVar

    from . import _credlock
    from ._types import {types}

    T = TypeVar(\"T\")


def _record(name: str, fields: Dict[str, Any]) -> Any:
    \"\"\"The result dataclass `name` from the host's fields by name; a list field becomes a
    tuple (the dataclasses are frozen).\"\"\"
    from . import _types

    cls = getattr(_types, name)
    return cls(**{{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}})


def _whole(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f\"expected an int, got {{type(n).__name__}}\")
    return n


class Operations:
    \"\"\"Mixed into `Store`, which provides `_n` (the native store) and `_run`.\"\"\"

    if TYPE_CHECKING:
        _n: _credlock.NativeStore

        async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

{}
",
        out.join("\n"),
        types = types.join(", "),
    )
}

// ----- Node -----

fn napi(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    for op in ops {
        let ty = op.ret.record.node;
        let (ret, convert) = if op.ret.list {
            (
                format!("Vec<{ty}>"),
                ".into_iter().map(Into::into).collect()",
            )
        } else {
            (ty.to_owned(), ".into()")
        };
        // A bool is optional in JS (false when left out).
        // A tenant arrives as any JS value and is refused as `invalid-tenant` unless a string,
        // as every binding refuses it; another string is typed.
        let params: String = op
            .params
            .iter()
            .map(|(n, t)| match t {
                Param::Bool => format!(", {n}: Option<bool>"),
                Param::Text if n == "tenant" => format!(", {n}: serde_json::Value"),
                Param::Text => format!(", {n}: String"),
                _ => format!(", {n}: {}", rust_param(*t)),
            })
            .collect();
        let checks: String = op
            .params
            .iter()
            .filter(|(n, t)| *t == Param::Text && n == "tenant")
            .map(|(n, _)| format!("let {n} = self::tenant(&{n})?; "))
            .collect();
        let args: Vec<String> = op
            .params
            .iter()
            .map(|(n, t)| match t {
                Param::Bool => format!("{n}.unwrap_or(false)"),
                Param::Text if n == "tenant" => n.clone(),
                Param::Text => format!("&{n}"),
                _ => n.clone(),
            })
            .collect();
        let args = args.join(", ");
        out.push("    #[napi]".into());
        out.push(format!(
            "    pub fn {}(&self{params}) -> napi::Result<{ret}> {{",
            op.snake
        ));
        if checks.is_empty() {
            out.push(format!(
                "        to_napi(self.store()?.{}({args}).map(|r| r{convert}))",
                op.snake
            ));
        } else {
            out.push("        let s = self.store()?;".into());
            out.push(format!(
                "        to_napi((|| {{ {checks}Ok(s.{}({args})?{convert}) }})())",
                op.snake
            ));
        }
        out.push("    }".into());
        out.push(String::new());
        out.push(format!(
            "    #[napi(ts_return_type = \"Promise<{}>\")]",
            ts_ret(op)
        ));
        out.push(format!(
            "    pub fn {}_async(&self{params}) -> AsyncTask<StoreTask<{ret}>> {{",
            op.snake
        ));
        out.push(format!(
            "        self.spawn(move |s| {{ {checks}Ok(s.{}({args})?{convert}) }})",
            op.snake
        ));
        out.push("    }".into());
        out.push(String::new());
    }
    out.pop();
    format!(
        "{HEADER_RS}
//! The store's operations that follow the bindings' conventions, and their `Async` twins.

use crate::*;
use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

#[napi]
impl NativeStore {{
{}
}}
",
        out.join("\n")
    )
}

fn ts_ret(op: &Operation) -> String {
    if op.ret.list {
        format!("{}[]", op.ret.record.node)
    } else {
        op.ret.record.node.to_owned()
    }
}

/// `(positional, options)`: JS parameters, and the bools as an options object's fields.
fn js_params(op: &Operation) -> (Vec<String>, Vec<String>) {
    let positional = op
        .params
        .iter()
        .filter(|(_, t)| *t != Param::Bool)
        .map(|(n, _)| camel(n))
        .collect();
    let options = op
        .params
        .iter()
        .filter(|(_, t)| *t == Param::Bool)
        .map(|(n, _)| camel(n))
        .collect();
    (positional, options)
}

fn index_js(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    for op in ops {
        let (positional, options) = js_params(op);
        let mut params = positional.clone();
        if !options.is_empty() {
            params.push("opts".into());
        }
        let args: Vec<String> = op
            .params
            .iter()
            // index.js's own helpers, as its hand-written methods use them: a number that is
            // not one becomes NaN, which the addon refuses; a tenant goes as it is, for the
            // addon to refuse as `invalid-tenant`; another string is made one.
            .map(|(n, t)| match t {
                Param::Bool => format!("opt(opts?.{})", camel(n)),
                Param::U32 => format!("num({})", camel(n)),
                Param::Text if n == "tenant" => camel(n),
                Param::Text => format!("String({})", camel(n)),
            })
            .collect();
        let name = camel(&op.snake);
        out.push(format!(
            "  {name}({}) {{ return call(() => this.#n.{name}({})); }}",
            params.join(", "),
            args.join(", ")
        ));
        out.push(format!(
            "  {name}Async({}) {{ return callAsync(() => this.#n.{name}Async({})); }}",
            params.join(", "),
            args.join(", ")
        ));
    }
    out.join("\n")
}

fn index_dts(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    for op in ops {
        let (positional, options) = js_params(op);
        let mut params: Vec<String> = op
            .params
            .iter()
            .filter(|(_, t)| *t != Param::Bool)
            .zip(&positional)
            .map(|((_, t), n)| match t {
                Param::Text => format!("{n}: string"),
                _ => format!("{n}: number"),
            })
            .collect();
        if !options.is_empty() {
            let fields: Vec<String> = options.iter().map(|o| format!("{o}?: boolean")).collect();
            params.push(format!("options?: {{ {} }}", fields.join("; ")));
        }
        let name = camel(&op.snake);
        let one = format!("  /** {} */", op.doc);
        if one.len() <= WIDTH {
            out.push(one);
        } else {
            out.push("  /**".into());
            out.extend(wrap(&op.doc, "   * ", WIDTH));
            out.push("   */".into());
        }
        out.push(format!("  {name}({}): {};", params.join(", "), ts_ret(op)));
        out.push(format!(
            "  {name}Async({}): Promise<{}>;",
            params.join(", "),
            ts_ret(op)
        ));
    }
    out.join("\n")
}

// ----- Go -----

fn go(ops: &[Operation]) -> String {
    let mut out = Vec::new();
    for op in ops {
        let name = go_name(&op.snake);
        let params: String = op
            .params
            .iter()
            .map(|(n, t)| {
                let ty = match t {
                    Param::Bool => "bool",
                    Param::U32 => "uint32",
                    Param::Text => "string",
                };
                format!(", {} {ty}", camel(n))
            })
            .collect();
        let args: String = op
            .params
            .iter()
            .map(|(n, t)| match t {
                Param::Bool => format!("C.bool({}), ", camel(n)),
                Param::U32 => format!("C.uint32_t({}), ", camel(n)),
                Param::Text => format!("c{}, ", go_name(n)),
            })
            .collect();
        // A string goes as a C copy, refused first if it holds a NUL (which C would cut at);
        // `call` frees the copies (zeroed) when the call is done.
        let texts: Vec<&str> = op
            .params
            .iter()
            .filter(|(_, t)| *t == Param::Text)
            .map(|(n, _)| n.as_str())
            .collect();
        let ty = op.ret.record.go;
        out.extend(wrap(
            &format!("{name}: {}", lower_first(&op.doc)),
            "// ",
            WIDTH,
        ));
        let (ret, decode) = if op.ret.list {
            (format!("[]{ty}"), format!("decode[[]{ty}]"))
        } else {
            (format!("*{ty}"), format!("decodePtr[{ty}]"))
        };
        out.push(format!(
            "func (s *Store) {name}(ctx context.Context{params}) ({ret}, error) {{"
        ));
        let copies: String = texts.iter().map(|n| format!(", c{}", go_name(n))).collect();
        if !texts.is_empty() {
            let pairs: Vec<String> = texts
                .iter()
                .map(|n| format!("\"{n}\", {}", camel(n)))
                .collect();
            out.push(format!(
                "\tif err := nulError({}); err != nil {{",
                pairs.join(", ")
            ));
            out.push("\t\treturn nil, err".into());
            out.push("\t}".into());
            for n in &texts {
                out.push(format!("\tc{} := cString({})", go_name(n), camel(n)));
            }
        }
        out.push(format!(
            "\treturn {decode}(s.call(ctx, func(h *C.credlock_store, r, e **C.char) C.int {{"
        ));
        out.push(format!("\t\treturn C.credlock_{}(h, {args}r, e)", op.snake));
        out.push(format!("\t}}{copies}))"));
        out.push("}".into());
        out.push(String::new());
    }
    out.pop();
    format!(
        "// Code generated by host/surface/tests/operations.rs from wit/store.wit; DO NOT EDIT.
// Edit the WIT (or the generator), then `CREDLOCK_BLESS=1 cargo test -p credlock-surface`.

package credlock

/*
#include \"credlock.h\"
*/
import \"C\"

import \"context\"

{}
",
        out.join("\n")
    )
}

#[test]
fn generated_operations_are_current() {
    let ops = operations();
    let region = |rel, body| Target::Region {
        rel,
        begin: "generated by host/surface/tests/operations.rs from wit/store.wit",
        end: "end of generated operations",
        body,
    };
    generated::check(
        "wit/store.wit",
        "CREDLOCK_BLESS=1 cargo test -p credlock-surface; cargo build -p credlock-capi",
        &[
            Target::File {
                rel: "host/src/operations.rs",
                text: rustfmt(&host(&ops)),
            },
            Target::File {
                rel: "host/capi/src/operations.rs",
                text: rustfmt(&c(&ops)),
            },
            region("host/python/rust/lib.rs", pyo3(&ops)),
            region("host/python/src/credlock/_credlock.pyi", pyi(&ops)),
            Target::File {
                rel: "host/python/src/credlock/_operations.py",
                text: python(&ops),
            },
            Target::File {
                rel: "host/node/native/src/operations.rs",
                text: rustfmt(&napi(&ops)),
            },
            region("host/node/src/index.js", index_js(&ops)),
            region("host/node/src/index.d.ts", index_dts(&ops)),
            Target::File {
                rel: "host/go/operations.go",
                text: go(&ops),
            },
        ],
    );
}
