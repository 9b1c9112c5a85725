//! A restricted unpickler: the small part of Python's pickle machine that `torch.save` uses to
//! describe a checkpoint (`data.pkl` inside the zip, protocol 2; protocol 3–5 framing is tolerated).
//!
//! A pickle is a program: opcodes push values, build containers and *call* globals named by
//! module and attribute. Loading an untrusted pickle with Python runs whatever the file names
//! (`os.system`, `builtins.eval`, …). This machine never calls anything: a `GLOBAL` opcode is
//! accepted only for the few names in [`Global`] (an `OrderedDict` and the torch functions that
//! rebuild tensors from storages), and `REDUCE` on one of them only builds a [`Value`] that
//! describes the result. Any other global is refused with an error naming it.
//!
//! Python values have reference semantics (a dict memoized before its items are set is the same
//! dict when fetched again), so values live in an arena ([`Pickle::values`]) and the stack, the
//! memo and the containers hold indices into it. Every opcode adds at most one value and reads at
//! least one byte, so the arena is bounded by the input length; lengths stated by the input are
//! checked against the bytes left before anything is allocated for them.

use super::stored::StoredDType;
use std::collections::HashMap;

/// Index of a value in [`Pickle::values`].
pub type Id = usize;

/// Most entries the stack may hold: far above what a state dict needs (its SETITEMS batches
/// are 1000 pairs), low enough that a hostile file cannot grow memory through it.
const MAX_STACK: usize = 1 << 20;
/// Most entries the memo may hold.
const MAX_MEMO: usize = 1 << 22;
/// Longest `module\nname\n` line a GLOBAL may carry.
const MAX_GLOBAL_LINE: usize = 256;
/// Most dimensions a tensor may have.
const MAX_RANK: usize = 64;

/// A global the machine accepts. Everything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: state dicts are ordered dicts.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`: an `nn.Parameter`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    RebuildParameterWithState,
    /// A storage class (`torch.FloatStorage`, …, `torch.UntypedStorage`) with the element type it
    /// holds. It only appears inside a persistent id, naming the type of a `data/N` entry.
    Storage(StoredDType),
}

impl Global {
    /// The allowed global for `module.name`, if it is one.
    fn lookup(module: &str, name: &str) -> Option<Global> {
        use StoredDType::*;
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch", storage) => Global::Storage(match storage {
                "FloatStorage" => F32,
                "HalfStorage" => F16,
                "BFloat16Storage" => BF16,
                "DoubleStorage" => F64,
                "LongStorage" => I64,
                "IntStorage" => I32,
                "ShortStorage" => I16,
                "CharStorage" => I8,
                "ByteStorage" => U8,
                "BoolStorage" => Bool,
                // An untyped storage counts bytes.
                "UntypedStorage" => U8,
                _ => return None,
            }),
            ("torch.storage", "UntypedStorage") => Global::Storage(U8),
            _ => return None,
        })
    }
}

/// One `data/KEY` entry of the checkpoint, as a persistent id names it.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Element type of the storage.
    pub dtype: StoredDType,
    /// The entry name under `data/`.
    pub key: String,
    /// Where it lived when saved (`cpu`, `cuda:0`, …); informational.
    pub location: String,
    /// Number of elements of `dtype` in the storage.
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view into a storage, in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage the view reads.
    pub storage: StorageRef,
    /// First element of the view in the storage.
    pub offset: u64,
    /// Shape.
    pub size: Vec<u64>,
    /// Strides in elements (PyTorch allows no negative strides in saved tensors).
    pub stride: Vec<u64>,
}

/// A value built by the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// Integers up to 64 bits (wider ones are refused: a checkpoint has no use for them).
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key/value pairs in insertion order. A key set twice appears twice; readers take the
    /// last value (see [`Pickle::dict_entries`]).
    Dict(Vec<(Id, Id)>),
    /// An allowed global, before it is applied.
    Global(Global),
    /// A storage, from a persistent id.
    Storage(StorageRef),
    /// A tensor, from `_rebuild_tensor_v2` (or a parameter wrapping one).
    Tensor(TensorRef),
}

impl Value {
    /// A short name of the variant for messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Why a pickle was refused. Offsets count bytes from the start of the pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// The bytes are not a pickle this machine can read.
    Malformed { offset: usize, msg: String },
    /// The pickle names a global outside the allow-list (`module.name`).
    Forbidden { offset: usize, global: String },
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickleError::Malformed { offset, msg } => write!(f, "byte {offset}: {msg}"),
            PickleError::Forbidden { offset, global } => write!(
                f,
                "byte {offset}: refusing global {global} (only collections.OrderedDict, torch \
                 storage types and torch._utils tensor rebuilders are allowed)"
            ),
        }
    }
}

impl std::error::Error for PickleError {}

/// The result of running a pickle: the arena of values and the one `STOP` returned.
#[derive(Debug)]
pub struct Pickle {
    values: Vec<Value>,
    root: Id,
}

impl Pickle {
    /// Run `data` (the bytes of `data.pkl`).
    pub fn parse(data: &[u8]) -> Result<Pickle, PickleError> {
        Machine::new(data).run()
    }

    /// The value returned by the pickle.
    pub fn root(&self) -> Id {
        self.root
    }

    /// The value `id`. Ids come from this pickle, so they are always in range.
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    /// Every value built.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The string `id` holds, if it is one.
    pub fn as_str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of the dict `id` with Python's semantics: a key set twice keeps its first
    /// position and its last value. `None` if `id` is not a dict. Keys are compared by value for
    /// strings and integers, by identity otherwise.
    pub fn dict_entries(&self, id: Id) -> Option<Vec<(Id, Id)>> {
        let Value::Dict(pairs) = self.get(id) else {
            return None;
        };
        let mut out: Vec<(Id, Id)> = Vec::with_capacity(pairs.len());
        let mut seen: HashMap<KeyRepr<'_>, usize> = HashMap::new();
        for &(k, v) in pairs {
            let repr = match self.get(k) {
                Value::Str(s) => KeyRepr::Str(s),
                Value::Int(i) => KeyRepr::Int(*i),
                _ => KeyRepr::Id(k),
            };
            match seen.get(&repr) {
                Some(&i) => out[i].1 = v,
                None => {
                    seen.insert(repr, out.len());
                    out.push((k, v));
                }
            }
        }
        Some(out)
    }
}

#[derive(Hash, PartialEq, Eq)]
enum KeyRepr<'a> {
    Str(&'a str),
    Int(i64),
    Id(Id),
}

/// One entry of the machine's stack: a value or a MARK.
#[derive(Clone, Copy)]
enum Slot {
    Val(Id),
    Mark,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run (for messages).
    op_at: usize,
    values: Vec<Value>,
    stack: Vec<Slot>,
    memo: HashMap<u32, Id>,
}

type R<T> = Result<T, PickleError>;

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            op_at: 0,
            values: Vec::new(),
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(PickleError::Malformed {
            offset: self.op_at,
            msg: msg.into(),
        })
    }

    // ---- reading the input ----

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left {
            return Err(PickleError::Malformed {
                offset: self.pos,
                msg: format!("needs {n} bytes, {left} left (truncated pickle?)"),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length stated by the input, checked against the bytes left (so it can be allocated).
    fn len_from(&mut self, n: u64) -> R<usize> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.err(format!(
                "states a length of {n} bytes, only {left} left in the pickle"
            ));
        }
        Ok(n as usize)
    }

    fn utf8(&self, bytes: &[u8]) -> R<String> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => self.err(format!("string is not UTF-8: {e}")),
        }
    }

    /// A `\n`-terminated line of at most [`MAX_GLOBAL_LINE`] bytes (GLOBAL's operands).
    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos..];
        let limit = rest.len().min(MAX_GLOBAL_LINE);
        let Some(n) = rest[..limit].iter().position(|&b| b == b'\n') else {
            return self.err(format!(
                "GLOBAL operand has no newline within {MAX_GLOBAL_LINE} bytes"
            ));
        };
        let s = self.utf8(&rest[..n])?;
        self.pos += n + 1;
        Ok(s)
    }

    // ---- the stack ----

    fn new_value(&mut self, v: Value) -> Id {
        self.values.push(v);
        self.values.len() - 1
    }

    fn push_slot(&mut self, s: Slot) -> R<()> {
        if self.stack.len() >= MAX_STACK {
            return self.err(format!("stack deeper than {MAX_STACK}"));
        }
        self.stack.push(s);
        Ok(())
    }

    fn push(&mut self, v: Value) -> R<()> {
        let id = self.new_value(v);
        self.push_slot(Slot::Val(id))
    }

    fn pop(&mut self) -> R<Id> {
        match self.stack.pop() {
            Some(Slot::Val(id)) => Ok(id),
            Some(Slot::Mark) => self.err("expected a value on the stack, found a MARK"),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> R<Id> {
        match self.stack.last() {
            Some(Slot::Val(id)) => Ok(*id),
            Some(Slot::Mark) => self.err("expected a value on the stack, found a MARK"),
            None => self.err("stack underflow"),
        }
    }

    /// Pop everything above the newest MARK, and the MARK.
    fn pop_mark(&mut self) -> R<Vec<Id>> {
        let Some(at) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return self.err("no MARK on the stack");
        };
        let items = self.stack[at + 1..]
            .iter()
            .map(|s| match s {
                Slot::Val(id) => *id,
                Slot::Mark => unreachable!("rposition found the last MARK"),
            })
            .collect();
        self.stack.truncate(at);
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> R<()> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return self.err(format!("memo larger than {MAX_MEMO} entries"));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> R<()> {
        match self.memo.get(&key) {
            Some(&id) => self.push_slot(Slot::Val(id)),
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    // ---- containers ----

    fn list_extend(&mut self, items: Vec<Id>) -> R<()> {
        let list = self.top()?;
        match &mut self.values[list] {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => {
                let kind = other.kind();
                self.err(format!("APPEND to a {kind}, not a list"))
            }
        }
    }

    fn dict_extend(&mut self, items: Vec<Id>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return self.err(format!("SETITEMS with an odd count ({})", items.len()));
        }
        let dict = self.top()?;
        match &mut self.values[dict] {
            Value::Dict(d) => {
                d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            other => {
                let kind = other.kind();
                self.err(format!("SETITEM on a {kind}, not a dict"))
            }
        }
    }

    // ---- globals and calls ----

    fn global(&mut self, module: &str, name: &str) -> R<()> {
        match Global::lookup(module, name) {
            Some(g) => self.push(Value::Global(g)),
            None => Err(PickleError::Forbidden {
                offset: self.op_at,
                global: format!("{module}.{name}"),
            }),
        }
    }

    fn int_of(&self, id: Id, what: &str) -> R<i64> {
        match self.values[id] {
            Value::Int(i) => Ok(i),
            Value::Bool(b) => Ok(b as i64),
            ref v => self.err(format!("{what} is a {}, not an int", v.kind())),
        }
    }

    fn dims_of(&self, id: Id, what: &str) -> R<Vec<u64>> {
        let Value::Tuple(items) = &self.values[id] else {
            return self.err(format!(
                "{what} is a {}, not a tuple",
                self.values[id].kind()
            ));
        };
        if items.len() > MAX_RANK {
            return self.err(format!("{what} has {} dims (> {MAX_RANK})", items.len()));
        }
        items
            .iter()
            .map(|&d| {
                let v = self.int_of(d, what)?;
                u64::try_from(v).or_else(|_| self.err(format!("{what} holds {v} (negative)")))
            })
            .collect()
    }

    /// REDUCE / NEWOBJ: apply an allowed callable to `args` (a tuple). Nothing runs: the
    /// result is the value the call would produce.
    fn apply(&mut self, func: Id, args: Id) -> R<()> {
        let Value::Global(g) = self.values[func] else {
            return self.err(format!(
                "REDUCE on a {}, not an allowed global",
                self.values[func].kind()
            ));
        };
        let Value::Tuple(a) = &self.values[args] else {
            return self.err(format!(
                "REDUCE arguments are a {}, not a tuple",
                self.values[args].kind()
            ));
        };
        let a = a.clone();
        let v = match g {
            Global::OrderedDict => match a[..] {
                [] => Value::Dict(Vec::new()),
                // OrderedDict([(k, v), ...]).
                [items] => {
                    let (Value::List(pairs) | Value::Tuple(pairs)) = &self.values[items] else {
                        return self.err("OrderedDict(...) argument is not a list of pairs");
                    };
                    let mut d = Vec::with_capacity(pairs.len());
                    for &p in pairs {
                        match &self.values[p] {
                            Value::Tuple(kv) if kv.len() == 2 => d.push((kv[0], kv[1])),
                            _ => return self.err("OrderedDict(...) item is not a pair"),
                        }
                    }
                    Value::Dict(d)
                }
                _ => return self.err(format!("OrderedDict called with {} arguments", a.len())),
            },
            Global::RebuildTensorV2 => {
                if a.len() != 6 && a.len() != 7 {
                    return self.err(format!(
                        "_rebuild_tensor_v2 called with {} arguments, expected 6 or 7",
                        a.len()
                    ));
                }
                let Value::Storage(storage) = &self.values[a[0]] else {
                    return self.err(format!(
                        "_rebuild_tensor_v2: first argument is a {}, not a storage",
                        self.values[a[0]].kind()
                    ));
                };
                let storage = storage.clone();
                let offset = self.int_of(a[1], "storage offset")?;
                let offset = u64::try_from(offset)
                    .or_else(|_| self.err(format!("storage offset {offset} is negative")))?;
                let size = self.dims_of(a[2], "size")?;
                let stride = self.dims_of(a[3], "stride")?;
                if size.len() != stride.len() {
                    return self.err(format!(
                        "size has {} dims but stride has {}",
                        size.len(),
                        stride.len()
                    ));
                }
                Value::Tensor(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                })
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let want = if g == Global::RebuildParameter { 3 } else { 4 };
                if a.len() != want {
                    return self.err(format!(
                        "_rebuild_parameter called with {} arguments, expected {want}",
                        a.len()
                    ));
                }
                match &self.values[a[0]] {
                    Value::Tensor(t) => Value::Tensor(t.clone()),
                    v => {
                        return self.err(format!(
                            "_rebuild_parameter: data is a {}, not a tensor",
                            v.kind()
                        ))
                    }
                }
            }
            Global::Storage(dt) => {
                return self.err(format!(
                    "a {dt} storage class is called; storages come only from persistent ids"
                ))
            }
        };
        self.push(v)
    }

    /// BINPERSID: `('storage', storage_type, key, location, numel)` names a `data/KEY` entry.
    fn persistent(&mut self, pid: Id) -> R<()> {
        let Value::Tuple(t) = &self.values[pid] else {
            return self.err(format!(
                "persistent id is a {}, not a tuple",
                self.values[pid].kind()
            ));
        };
        let [tag, ty, key, loc, numel] = t[..] else {
            return self.err(format!("persistent id has {} fields, expected 5", t.len()));
        };
        if !matches!(&self.values[tag], Value::Str(s) if s == "storage") {
            return self.err("persistent id does not start with 'storage'");
        }
        let Value::Global(Global::Storage(dtype)) = self.values[ty] else {
            return self.err("persistent id: second field is not a storage type");
        };
        let key = match &self.values[key] {
            Value::Str(s) => s.clone(),
            // Very old writers used integer keys.
            Value::Int(i) => i.to_string(),
            v => return self.err(format!("persistent id: key is a {}", v.kind())),
        };
        let location = match &self.values[loc] {
            Value::Str(s) => s.clone(),
            v => return self.err(format!("persistent id: location is a {}", v.kind())),
        };
        let numel = self.int_of(numel, "storage size")?;
        let numel = u64::try_from(numel)
            .or_else(|_| self.err(format!("storage size {numel} is negative")))?;
        self.push(Value::Storage(StorageRef {
            dtype,
            key,
            location,
            numel,
        }))
    }

    /// BUILD: set the state of the object below. Ordered dicts carry a `_metadata` attribute
    /// (module versions) that loaders ignore; tensors may carry hooks state. Both are dropped.
    fn build(&mut self) -> R<()> {
        let _state = self.pop()?;
        let obj = self.top()?;
        match self.values[obj] {
            Value::Dict(_) | Value::Tensor(_) => Ok(()),
            ref v => self.err(format!("BUILD on a {}", v.kind())),
        }
    }

    // ---- the loop ----

    fn run(mut self) -> R<Pickle> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return self.err(format!("pickle protocol {p} is newer than 5"));
                    }
                }
                0x95 => {
                    // FRAME: a length prefix for buffering; the content follows inline.
                    let _ = self.u64()?;
                }
                b'.' => {
                    // STOP
                    let root = self.pop()?;
                    return Ok(Pickle {
                        values: self.values,
                        root,
                    });
                }
                b'(' => self.push_slot(Slot::Mark)?,
                b'0' => {
                    // POP (a MARK if that is on top, as Python does).
                    if self.stack.pop().is_none() {
                        return self.err("POP on an empty stack");
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.push_slot(Slot::Val(id))?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement of n bytes.
                    let n = if op == 0x8a {
                        self.u8()? as u64
                    } else {
                        self.u32()? as u64
                    };
                    if n > 8 {
                        return self.err(format!("integer of {n} bytes is wider than 64 bits"));
                    }
                    let n = self.len_from(n)?;
                    let b = self.take(n)?;
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.push(Value::Float(v))?
                }
                0x8c | b'X' | 0x8d => {
                    // SHORT_BINUNICODE / BINUNICODE / BINUNICODE8
                    let n = match op {
                        0x8c => self.u8()? as u64,
                        b'X' => self.u32()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?;
                    let s = self.utf8(b)?;
                    self.push(Value::Str(s))?
                }
                b'U' | b'T' => {
                    // SHORT_BINSTRING / BINSTRING: Python 2 `str`; text if it decodes.
                    let n = if op == b'U' {
                        self.u8()? as u64
                    } else {
                        let n = self.u32()? as i32;
                        u64::try_from(n).or_else(|_| self.err("negative BINSTRING length"))?
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?;
                    let v = match std::str::from_utf8(b) {
                        Ok(s) => Value::Str(s.to_string()),
                        Err(_) => Value::Bytes(b.to_vec()),
                    };
                    self.push(v)?
                }
                b'C' | b'B' | 0x8e => {
                    // SHORT_BINBYTES / BINBYTES / BINBYTES8
                    let n = match op {
                        b'C' => self.u8()? as u64,
                        b'B' => self.u32()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b']' => self.push(Value::List(Vec::new()))?,
                b'}' => self.push(Value::Dict(Vec::new()))?,
                0x85..=0x87 => {
                    // TUPLE1..3
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items))?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if !items.len().is_multiple_of(2) {
                        return self.err("DICT with an odd number of items");
                    }
                    let pairs = items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect();
                    self.push(Value::Dict(pairs))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.list_extend(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.list_extend(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.dict_extend(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.dict_extend(items)?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    // MEMOIZE: the next free memo index.
                    let k = u32::try_from(self.memo.len()).or_else(|_| self.err("memo full"))?;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?
                }
                0x93 => {
                    // STACK_GLOBAL: module and name are the two strings on the stack.
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.values[module], &self.values[name]) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?
                        }
                        _ => return self.err("STACK_GLOBAL operands are not strings"),
                    }
                }
                b'R' | 0x81 => {
                    // REDUCE / NEWOBJ
                    let args = self.pop()?;
                    let func = self.pop()?;
                    self.apply(func, args)?
                }
                b'b' => self.build()?,
                b'Q' => {
                    let pid = self.pop()?;
                    self.persistent(pid)?
                }
                other => {
                    return self.err(format!(
                        "opcode 0x{other:02x} ({:?}) is not supported by the restricted unpickler",
                        other as char
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(data: &[u8]) -> String {
        match Pickle::parse(data) {
            Err(PickleError::Forbidden { global, .. }) => global,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    fn malformed(data: &[u8]) -> String {
        match Pickle::parse(data) {
            Err(PickleError::Malformed { msg, .. }) => msg,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn refuses_code_execution_globals() {
        // `pickle.dumps` of an object whose __reduce__ is (os.system, ("echo",)), protocol 2.
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
        assert_eq!(forbidden(p), "posix.system");
        assert_eq!(forbidden(b"\x80\x02cbuiltins\neval\n."), "builtins.eval");
        // STACK_GLOBAL (protocol 4) goes through the same check.
        let p = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93.";
        assert_eq!(forbidden(p), "os.system");
        // A storage type is allowed but not callable.
        let m = malformed(b"\x80\x02ctorch\nFloatStorage\n)R.");
        assert!(m.contains("storage class is called"), "{m}");
    }

    #[test]
    fn builds_containers_with_reference_semantics() {
        // d = {}; d["a"] = [1, 2**40, -1]; l = [d, d] -> memo makes both the same dict.
        let p: &[u8] = b"\x80\x02]q\x00(}q\x01X\x01\x00\x00\x00aq\x02]q\x03(K\x01\x8a\x06\x00\x00\x00\x00\x00\x01J\xff\xff\xff\xffesh\x01e.";
        let pk = Pickle::parse(p).unwrap();
        let Value::List(l) = pk.get(pk.root()) else {
            panic!()
        };
        assert_eq!(l.len(), 2);
        assert_eq!(l[0], l[1]);
        let e = pk.dict_entries(l[0]).unwrap();
        assert_eq!(pk.as_str(e[0].0), Some("a"));
        let Value::List(nums) = pk.get(e[0].1) else {
            panic!()
        };
        let nums: Vec<_> = nums.iter().map(|&i| pk.get(i).clone()).collect();
        assert_eq!(
            nums,
            vec![Value::Int(1), Value::Int(1 << 40), Value::Int(-1)]
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(malformed(b"").contains("truncated"));
        assert!(malformed(b"\x80\x02").contains("truncated"));
        assert!(malformed(b"\x80\x02\xff").contains("0xff"));
        assert!(malformed(b"\x80\x02.").contains("underflow"));
        // A string claiming 4 GB.
        assert!(malformed(b"\x80\x02X\xff\xff\xff\xff").contains("length"));
        assert!(malformed(b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff").contains("length"));
        // LONG4 wider than 64 bits.
        assert!(malformed(b"\x80\x02\x8b\x00\x01\x00\x00").contains("wider"));
        assert!(malformed(b"\x80\x02h\x07.").contains("memo"));
        assert!(malformed(b"\x80\x02K\x01K\x02a.").contains("APPEND to a int"));
        assert!(malformed(b"\x80\x02K\x01K\x02R.").contains("REDUCE on a int"));
        assert!(malformed(b"\x80\x02t.").contains("MARK"));
        assert!(malformed(b"\x80\x02cos\n").contains("newline"));
        assert!(malformed(b"\x80\x09.").contains("protocol"));
        // A persistent id that is not a storage.
        assert!(malformed(b"\x80\x02K\x01Q.").contains("persistent id"));
    }

    #[test]
    fn every_truncation_of_a_valid_pickle_is_an_error() {
        let p: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aK\x05s.";
        let full = Pickle::parse(p).unwrap();
        assert_eq!(full.dict_entries(full.root()).unwrap().len(), 1);
        for n in 0..p.len() {
            assert!(
                Pickle::parse(&p[..n]).is_err(),
                "prefix of {n} bytes parsed"
            );
        }
    }

    #[test]
    fn stack_is_bounded() {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', MAX_STACK + 1));
        assert!(malformed(&p).contains("stack deeper"));
    }
}
