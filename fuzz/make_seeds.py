#!/usr/bin/env python3
"""Write the small seed corpora in fuzz/corpus/TARGET: one or a few valid files per parser,
built here byte by byte (no dependencies), plus small committed test files where they exist."""
import os, shutil, struct, json

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(ROOT)

def put(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def wav(tag, channels, rate, bits, data):
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", len(data)) + data)

put("wav", "mono16.wav", wav(1, 1, 16000, 16, struct.pack("<8h", 0, 100, -100, 32767, -32768, 5, 6, 7)))
put("wav", "stereo8_22k.wav", wav(1, 2, 22050, 8, bytes(range(0, 256, 8))))
put("wav", "float_48k.wav", wav(3, 1, 48000, 32, struct.pack("<6f", 0.0, 0.5, -0.5, 1.0, -1.0, 0.25)))
put("wav", "pcm24.wav", wav(1, 1, 8000, 24, bytes(range(24))))

def safetensors(tensors, meta=None):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

put("safetensors", "two.safetensors", safetensors([
    ("a.weight", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    ("b", "BF16", [3], b"\x80\x3f\x00\x40\x40\x40"),
], {"format": "pt"}))
put("safetensors", "f16.safetensors", safetensors([("h", "F16", [2], b"\x00\x3c\x00\xc0")]))

def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b

def gguf(kvs, tensors):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, vtype, v in kvs:
        out += gstr(k) + struct.pack("<I", vtype) + v
    off, blobs = 0, b""
    for name, ggml, dims, raw in tensors:
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml, off)
        blobs += raw + b"\0" * (-len(raw) % 32)
        off = len(blobs)
    out += b"\0" * (-len(out) % 32)
    return out + blobs

q8 = struct.pack("<e", 0.5) + bytes((i * 7) % 256 for i in range(32))
put("gguf", "small.gguf", gguf(
    [("general.architecture", 8, gstr("llama")), ("general.alignment", 4, struct.pack("<I", 32)),
     ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("a") + gstr("b") + gstr("ab"))],
    [("token_embd.weight", 0, [4], struct.pack("<4f", 1, 2, 3, 4)),
     ("blk.0.attn_q.weight", 8, [32], q8),
     ("output_norm.weight", 1, [2], b"\x00\x3c\x00\xc0")]))

def ct_str(s):
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b

def ct_var(name, dims, code, raw):
    return ct_str(name) + struct.pack("<B", len(dims)) + b"".join(struct.pack("<I", d) for d in dims) \
        + struct.pack("<BI", code, len(raw)) + raw

put("ctranslate2", "model.bin",
    struct.pack("<I", 6) + ct_str("WhisperSpec") + struct.pack("<II", 3, 3)
    + ct_var("a/weight", [2, 2], 0, struct.pack("<4f", 1, 2, 3, 4))
    + ct_var("n", [], 2, struct.pack("<h", -3))
    + ct_var("h", [2], 4, b"\x00\x3c\x00\xc0")
    + struct.pack("<I", 1) + ct_str("alias") + ct_str("a/weight"))

def copy(target, src):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(REPO, src), d)

for f in ["views.pt", "malicious_system.pt"]:
    copy("pytorch", "tests/data/pt/" + f)
for f in ["unigram_plain.model", "bpe_plain.model"]:
    copy("sentencepiece", "tests/data/spm/" + f)
