#!/usr/bin/env python3
"""How much of each closed-set label a probe reads off each layer of the frozen speech encoder,
on voices it never saw.

A diagnostic behind train/attributes.rs and the gender target of the README: if a probe fitted on
the training clips' pooled features reads gender off the test split's held-out voices at 89%, a
model reading the same features is not expected to do much better, and the remedy lies in the
features or the training voices, not the training schedule.

Input: two files written by `osum features` (train/probe.rs), one for the training clips and one
for the held-out clips, and the manifests they came from (for the labels and each clip's
`speaker`). Each clip's features are every encoder layer's mean and std over time.

For each layer (and all layers together) and each task, it standardises the features with the
training clips' statistics, fits a softmax regression by full-batch gradient descent (1000 steps
of a step size that cannot diverge, L2 0.01; deterministic) and prints the held-out accuracy.
`--taps A B ...` adds one more view, those layers side by side (as a preset's `encoder_taps`
feeds the adapter). `--per-voice` adds the correct count per held-out voice; `--misses` the
misses per voice and the clip's one varied factor (age, style or emotion; "plain" when none);
`--asked` scores only the held-out clips whose item asks for the task (the items `osum eval`
scores). `--f0` adds two views that do not come from the encoder: four pitch statistics of each
clip read off its WAV (the median, 10th and 90th percentile of log F0 over voiced frames, and
the voiced fraction; see `f0_stats`), alone and beside `ln_post`: how far pitch alone tells
the held-out voices' gender, against what the adapter reads.

Without the held-out files, `--hold-out VOICE ...` scores a few training voices instead, fitted
on the rest: the way to compare data changes without looking at the test split.

Usage:
  osum features --manifest DATA/train.jsonl --out train.safetensors
  osum features --manifest DATA/test.jsonl --out test.safetensors
  scripts/probe_encoder_features.py DATA/train.jsonl train.safetensors \\
      [DATA/test.jsonl test.safetensors | --hold-out VOICE ...] \\
      [--tasks gender style] [--taps stem ln_post] [--per-voice] [--misses] [--asked] [--f0]
Needs numpy.
"""
import argparse
import collections
import json
import os
import struct
import sys
import wave

import numpy as np

TASKS = ["gender", "style", "age", "emotion", "event"]
# The factor a synth clip varies, and the value that means "not varied".
FACTORS = {"age": "adult", "style": "normal", "emotion": "neutral"}


def load_features(path):
    """The `pooled` tensor [clips, layers, 2d] and the header metadata of an `osum features`
    file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        sys.exit(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        sys.exit(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n])
    meta, info = header.get("__metadata__", {}), header.get("pooled")
    if not info or info.get("dtype") != "F32" or "audio" not in meta:
        sys.exit(f"{path}: not an `osum features` file (no F32 `pooled` with clip names)")
    start, end = info["data_offsets"]
    x = np.frombuffer(raw[8 + n + start:8 + n + end], dtype="<f4").reshape(info["shape"])
    return x, meta


def load_labels(manifest, audio):
    """Each clip's first manifest item (its labels and speaker), in the features' row order."""
    first = {}
    with open(manifest) as f:
        for line in f:
            item = json.loads(line)
            if item.get("audio"):
                first.setdefault(item["audio"], item)
    missing = [a for a in audio if a not in first]
    if missing:
        sys.exit(f"{manifest}: no item for {len(missing)} clips of the features, e.g. {missing[0]}")
    return [first[a] for a in audio]


def voiced_frames(x, sr):
    """The pitch analysis behind f0_stats, on samples x at rate sr: 40 ms frames (10 ms hop) with
    their mean removed; the loud ones (mean square >= 1e4, as indices into the frames) and their
    normalised autocorrelation r; per loud frame the lag k of r's peak between 60 and 400 Hz, and
    whether that peak exceeds 0.6 (voiced). Returns (frames, loud, r, k, voiced), or None when x
    is shorter than a frame."""
    n, hop = int(0.04 * sr), int(0.01 * sr)
    if len(x) <= n:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:len(x) - n:hop]
    frames = frames - frames.mean(1, keepdims=True)
    loud = np.where((frames ** 2).mean(1) >= 1e4)[0]
    # Linear autocorrelation through a zero-padded FFT (length ≥ 2n - 1: no wrap-around).
    spec = np.fft.rfft(frames[loud], 2 * n)
    r = np.fft.irfft(spec * spec.conj(), 2 * n)[:, :n]
    r /= r[:, :1] + 1e-9
    lo, hi = int(sr / 400), int(sr / 60)
    k = lo + np.argmax(r[:, lo:hi], 1)
    voiced = r[np.arange(len(k)), k] > 0.6
    return frames, loud, r, k, voiced


def f0_stats(path):
    """Pitch statistics of a 16-bit mono WAV: per 40 ms frame (10 ms hop) with enough energy, the
    lag of the autocorrelation's peak between 60 and 400 Hz, kept as voiced when the normalised
    peak exceeds 0.6. Returns [median, p10, p90] of log F0 over voiced frames and the voiced
    fraction (log 150 Hz and 0 when fewer than 3 frames are voiced)."""
    try:
        with wave.open(path) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                sys.exit(f"{path}: --f0 reads 16-bit mono WAVs (as `osum synth` writes)")
            sr = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    except (OSError, EOFError, wave.Error) as e:
        sys.exit(f"{path}: cannot read it as a WAV: {str(e) or type(e).__name__}")
    analysis = voiced_frames(x, sr)
    if analysis is None:
        return [np.log(150.0)] * 3 + [0.0]
    frames, _, _, k, voiced = analysis
    logf0 = np.log(sr / k[voiced])
    if len(logf0) < 3:
        return [np.log(150.0)] * 3 + [0.0]
    return [np.median(logf0), np.percentile(logf0, 10), np.percentile(logf0, 90),
            len(logf0) / len(frames)]


def clip_f0(manifest, audio):
    """`f0_stats` of every clip, paths taken relative to the manifest: an array [clips, 4]."""
    base = os.path.dirname(os.path.abspath(manifest))
    return np.array([f0_stats(os.path.join(base, a)) for a in audio])


def fit_softmax(x, t, classes, steps=1000, l2=1e-2):
    # The cross-entropy's Hessian is at most (1/2)·XᵀX/n + l2 (Böhning's bound), so a step of
    # its inverse never diverges, however correlated the features (power iteration for XᵀX/n).
    v = np.ones(x.shape[1]) / np.sqrt(x.shape[1])
    for _ in range(50):
        v = x.T @ (x @ v) / len(x)
        top = np.linalg.norm(v)
        v /= top
    lr = 1.0 / (0.5 * top + l2)
    w, b = np.zeros((x.shape[1], classes), x.dtype), np.zeros(classes, x.dtype)
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(t)), t] -= 1
        w -= lr * (x.T @ p / len(t) + l2 * w)
        b -= lr * p.mean(0)
    return w, b


def factor(item):
    varied = [f"{k}={item[k]}" for k, plain in FACTORS.items() if item.get(k) not in (None, plain)]
    return ",".join(varied) or "plain"


def probe(xtr, ytr, xte, yte, task, asked):
    """Held-out predictions for `task`, or None when either side has no labels for it; with
    `asked`, only held-out clips whose item asks for the task are scored (as `osum eval` does)."""
    labels = sorted({y[task] for y in ytr if y.get(task)})
    tr = [i for i, y in enumerate(ytr) if y.get(task)]
    te = [i for i, y in enumerate(yte)
          if y.get(task) in labels and (not asked or task in y.get("tasks", []))]
    if not tr or not te:
        return None
    mu, sd = xtr[tr].mean(0), xtr[tr].std(0) + 1e-6
    t = np.array([labels.index(ytr[i][task]) for i in tr])
    w, b = fit_softmax((xtr[tr] - mu) / sd, t, len(labels))
    pred = np.argmax((xte[te] - mu) / sd @ w + b, 1)
    truth = np.array([labels.index(yte[i][task]) for i in te])
    return te, pred == truth


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("train_manifest")
    ap.add_argument("train_features")
    ap.add_argument("test_manifest", nargs="?")
    ap.add_argument("test_features", nargs="?")
    ap.add_argument("--hold-out", nargs="+", metavar="VOICE",
                    default=["espeak:f5", "espeak:m8", "flite:rms", "espeak:anika", "espeak:paul"],
                    help="without test files: the training voices to hold out and score instead "
                         "(for choosing data changes without looking at the test split)")
    ap.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    ap.add_argument("--taps", nargs="+", metavar="LAYER",
                    help="also probe these layers side by side (a preset's `encoder_taps`)")
    ap.add_argument("--per-voice", action="store_true")
    ap.add_argument("--misses", action="store_true")
    ap.add_argument("--asked", action="store_true",
                    help="score only held-out clips whose item asks for the task, "
                    "as `osum eval` does")
    ap.add_argument("--f0", action="store_true",
                    help="also probe pitch statistics read off the WAVs, alone and beside ln_post")
    a = ap.parse_args()
    xtr, mtr = load_features(a.train_features)
    audio_tr = json.loads(mtr["audio"])
    ytr = load_labels(a.train_manifest, audio_tr)
    layers = mtr["layers"].split(",")
    if a.f0 and "ln_post" not in layers:
        sys.exit("--f0: the features have no ln_post layer to set the pitch beside")
    ftr = clip_f0(a.train_manifest, audio_tr) if a.f0 else None
    if (a.test_manifest is None) != (a.test_features is None):
        sys.exit("give both the held-out manifest and its features, or neither (--hold-out)")
    if a.test_manifest is None:
        held = set(a.hold_out)
        unknown = held - {y.get("speaker") for y in ytr}
        if unknown:
            sys.exit(f"--hold-out: no training clips of {sorted(unknown)}")
        te = [i for i, y in enumerate(ytr) if y.get("speaker") in held]
        tr = [i for i, y in enumerate(ytr) if y.get("speaker") not in held]
        xtr, xte, ytr, yte = xtr[tr], xtr[te], [ytr[i] for i in tr], [ytr[i] for i in te]
        if a.f0:
            ftr, fte = ftr[tr], ftr[te]
    else:
        xte, mte = load_features(a.test_features)
        if xtr.shape[1:] != xte.shape[1:] or mtr.get("encoder") != mte.get("encoder"):
            sys.exit("the two feature files come from different encoders")
        audio_te = json.loads(mte["audio"])
        yte = load_labels(a.test_manifest, audio_te)
        fte = clip_f0(a.test_manifest, audio_te) if a.f0 else None
    print(f"{mtr['encoder']}: {len(ytr)} training clips, {len(yte)} held-out clips; "
          "held-out accuracy of a softmax probe on mean+std-pooled features")
    views = [(name, xtr[:, k], xte[:, k]) for k, name in enumerate(layers)]
    views.append(("all", xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)))
    if a.taps:
        unknown = [t for t in a.taps if t not in layers]
        if unknown:
            sys.exit(f"--taps: no layer {unknown[0]} (the layers are {', '.join(layers)})")
        k = [layers.index(t) for t in a.taps]
        views.append(("+".join(a.taps), xtr[:, k].reshape(len(xtr), -1),
                      xte[:, k].reshape(len(xte), -1)))
    if a.f0:
        k = layers.index("ln_post")
        views.append(("f0", ftr, fte))
        views.append(("ln_post+f0", np.hstack([xtr[:, k], ftr]), np.hstack([xte[:, k], fte])))
    for name, vtr, vte in views:
        for task in a.tasks:
            r = probe(vtr, ytr, vte, yte, task, a.asked)
            if r is None:
                continue
            te, ok = r
            line = f"{name:8s} {task:8s} {ok.mean():.3f} (n={len(ok)})"
            voices = collections.defaultdict(lambda: [0, 0])
            misses = collections.Counter()
            for i, good in zip(te, ok):
                voice = yte[i].get("speaker", "?")
                voices[voice][0] += int(good)
                voices[voice][1] += 1
                if not good:
                    misses[(voice, factor(yte[i]))] += 1
            if a.per_voice:
                line += "  " + " ".join(f"{v}:{c}/{n}" for v, (c, n) in sorted(voices.items()))
            print(line)
            if a.misses and misses:
                print("         misses: " + ", ".join(
                    f"{v} {f} {n}" for (v, f), n in misses.most_common()))


if __name__ == "__main__":
    main()
