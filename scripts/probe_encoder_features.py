#!/usr/bin/env python3
"""How much of each closed-set label a linear probe reads off the frozen encoder's features.

A diagnostic behind train/attributes.rs: it reads the feature cache that `osum train` fills
(train/features.rs: one `OSUMFEA1` file per clip, named by a SHA-256 of the encoder name, the
clip's canonical path, size and mtime), mean/std-pools each clip's frames, holds out whole voices,
and fits a softmax regression per task by full-batch gradient descent.

Usage: scripts/probe_encoder_features.py DATA_DIR [FEATURE_CACHE] [--hold-out VOICE ...]
  DATA_DIR       an `osum synth` folder whose train clips have been through `osum train`
  FEATURE_CACHE  default: $OSUM_HOME/cache/features, else ./models/cache/features
Needs numpy.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

ENCODER = "whisper-tiny.en"
TASKS = ["gender", "style", "age", "emotion", "event"]


def cache_path(cache, audio):
    path = os.path.realpath(audio)
    st = os.stat(path)
    h = hashlib.sha256()
    for part in [ENCODER.encode(), path.encode(), struct.pack("<Q", st.st_size),
                 st.st_mtime_ns.to_bytes(16, "little")]:
        h.update(struct.pack("<Q", len(part)))
        h.update(part)
    return os.path.join(cache, h.hexdigest() + ".f32")


def load_clips(data, cache):
    feats, items, seen, missing = [], [], set(), 0
    with open(os.path.join(data, "train.jsonl")) as f:
        for line in f:
            item = json.loads(line)
            audio = item.get("audio")
            if not audio or audio in seen:
                continue
            seen.add(audio)
            entry = cache_path(cache, os.path.join(data, audio))
            if not os.path.exists(entry):
                missing += 1
                continue
            raw = open(entry, "rb").read()
            if raw[:8] != b"OSUMFEA1":
                sys.exit(f"{entry}: not a feature cache entry")
            frames, dim = struct.unpack("<II", raw[8:16])
            x = np.frombuffer(raw[16:], dtype=np.float32)
            if x.size != frames * dim:
                sys.exit(f"{entry}: length does not match its header")
            x = x.reshape(frames, dim)
            feats.append(np.concatenate([x.mean(0), x.std(0)]))
            items.append(item)
    print(f"{len(items)} clips with cached features, {missing} without", file=sys.stderr)
    return np.array(feats), items


def fit_and_score(xtr, ytr, xte, yte, task, steps=300, lr=0.5, l2=1e-3):
    labels = sorted({y[task] for y in ytr if y.get(task)})
    tr = [i for i, y in enumerate(ytr) if y.get(task)]
    te = [i for i, y in enumerate(yte) if y.get(task) in labels]
    if not tr or not te:
        return None
    x, t = xtr[tr], np.array([labels.index(ytr[i][task]) for i in tr])
    w, b = np.zeros((x.shape[1], len(labels))), np.zeros(len(labels))
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(t)), t] -= 1
        w -= lr * (x.T @ p / len(t) + l2 * w)
        b -= lr * p.mean(0)
    t2 = np.array([labels.index(yte[i][task]) for i in te])
    return (np.argmax(x @ w + b, 1) == t).mean(), (np.argmax(xte[te] @ w + b, 1) == t2).mean(), len(te)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    home = os.environ.get("OSUM_HOME", "models")
    ap.add_argument("cache", nargs="?", default=os.path.join(home, "cache", "features"))
    ap.add_argument("--hold-out", nargs="+",
                    default=["espeak:f5", "espeak:m8", "flite:rms", "espeak:anika", "espeak:paul"])
    a = ap.parse_args()
    x, items = load_clips(a.data, a.cache)
    if not items:
        sys.exit("no cached features: run `osum train` on this data first")
    held = set(a.hold_out)
    tr = [i for i, y in enumerate(items) if y.get("speaker") not in held]
    te = [i for i, y in enumerate(items) if y.get("speaker") in held]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    for task in TASKS:
        r = fit_and_score(x[tr], [items[i] for i in tr], x[te], [items[i] for i in te], task)
        if r:
            print(f"{task:8s} train acc {r[0]:.3f}  held-out voices acc {r[1]:.3f} (n={r[2]})")


if __name__ == "__main__":
    main()
