#!/usr/bin/env python3
"""Goldens for the GGUF reader on the real SmolLM2-135M-Instruct Q4_1 file (tests/gguf.rs).

Reads the file with the `gguf` Python package (llama.cpp's own reader and dequantizer) and writes
scripts/goldens/gguf_smollm2.json: the scalar metadata, sizes of the tokenizer arrays with a few of
their entries, and, for a few tensors, the engine shape and dequantized values at chosen flat
indices (row-major, i.e. numpy's order of the dequantized array):
  - token_embd.weight (Q8_0), blk.0.attn_q.weight (Q4_1, as stored: permuted rows),
    blk.29.ffn_down.weight (Q4_1), output_norm.weight (F32);
  - blk.0.attn_q.weight and blk.0.attn_k.weight with llama.cpp's q/k row permutation undone
    (numpy: w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2)), for GgufLlama.

Usage (the model comes from `osum setup`):
  python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install gguf numpy
  /tmp/venv-gguf/bin/python scripts/goldens/gguf_smollm2.py [models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

import json
import sys
from pathlib import Path

from importlib.metadata import version

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"


def field_value(f):
    """A scalar or string metadata value as a Python value."""
    t = f.types[0]
    if t == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    v = f.parts[f.data[0]][0]
    if t in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return float(v)
    if t == GGUFValueType.BOOL:
        return bool(v)
    return int(v)


def array_items(f):
    if f.types[1] == GGUFValueType.STRING:
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    return [int(f.parts[i][0]) for i in f.data]


def indices(n):
    """First 8, 64 evenly strided, last 8 flat indices of an n-element tensor."""
    idx = list(range(min(8, n)))
    step = max(1, n // 64)
    idx += list(range(0, n, step))[:64]
    idx += list(range(max(0, n - 8), n))
    return sorted(set(idx))


def sample(values, name, shape, ggml_type):
    flat = values.reshape(-1)
    idx = indices(flat.size)
    return {
        "name": name,
        "ggml_type": ggml_type,
        "shape": [int(d) for d in shape],
        "indices": idx,
        # float32 values written as float64 exactly (repr of a float32 widened is exact).
        "values": [float(flat[i]) for i in idx],
    }


def unpermute(w, n_head):
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    r = GGUFReader(str(path))
    meta = {}
    arrays = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        if f.types[0] == GGUFValueType.ARRAY:
            items = array_items(f)
            arrays[k] = {"len": len(items), "first": items[:20], "last": items[-3:]}
        else:
            meta[k] = field_value(f)
    tensors = {t.name: t for t in r.tensors}

    def deq(name):
        t = tensors[name]
        v = dequantize(t.data, t.tensor_type).astype(np.float32)
        # The reader's shape is ne fastest-first; the engine's is reversed.
        shape = [int(d) for d in reversed(t.shape.tolist())]
        return v.reshape(shape), t.tensor_type.name

    samples = []
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"]:
        v, ty = deq(name)
        samples.append(sample(v, name, v.shape, ty))

    n_head = meta["llama.attention.head_count"]
    n_kv = meta["llama.attention.head_count_kv"]
    unpermuted = []
    for name, hf, heads in [
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", n_head),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", n_kv),
    ]:
        v, ty = deq(name)
        s = sample(unpermute(v, heads), hf, v.shape, ty)
        unpermuted.append(s)

    out = {
        "source": path.name,
        "made_by": f"scripts/goldens/gguf_smollm2.py with gguf {version('gguf')}, numpy {np.__version__}",
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "n_tensors": len(r.tensors),
        "tensor_types": {t.name: t.tensor_type.name for t in r.tensors},
        "metadata": meta,
        "arrays": arrays,
        "samples": samples,
        "unpermuted": unpermuted,
    }
    dest = HERE / "gguf_smollm2.json"
    dest.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
