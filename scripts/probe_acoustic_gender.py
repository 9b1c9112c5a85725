#!/usr/bin/env python3
"""Whether a cheap per-clip acoustic summary tells the held-out voices' gender where the encoder
does not: a linear probe on pitch, formant, long-term spectrum, harmonic-profile and periodicity
features read off the WAVs.

A diagnostic for the README's gender target. probe_encoder_features.py --f0 showed four pitch
numbers reading gender better than any encoder layer on held-out training voices (94.3%), which
made a pitch track beside the encoder the lead; this script asks whether any such summary, alone
or beside the pitch numbers, reaches 95% on the test split too.

Every feature set gets the same probe, imported unchanged from probe_encoder_features.py
(`fit_softmax`, standardised with the training clips' statistics, L2 0.01) and its `f0_stats`:
  * test: fitted on all deduplicated training clips (each clip's label from its first line),
    scored on the test lines that ask for gender (what `osum eval` scores);
  * hold-out: fitted on the training clips of every voice but espeak f5, anika, m8, paul and
    flite rms, scored on all clips of those five.

Feature groups, all over the voiced frames of f0_stats (40 ms frames, 10 ms hop, energy >= 1e4,
normalised autocorrelation peak > 0.6 in 60-400 Hz):
  f0      4  f0_stats: median, p10 and p90 of log F0, voiced fraction
  ltas   40  mean log power in 40 mel bands (0-8 kHz), minus the clip's mean level
  form    5  LPC (order 16, pre-emphasis 0.97) F1-F3 medians (log Hz), median log spectral
             centroid, median spectral tilt (slope of log power against log2 f, 100-8000 Hz)
  ratio   4  medians of per-frame log(F1/F0), log(F2/F0), log(F3/F0), log(centroid/F0)
  harm   24  log amplitude at harmonics 1-24 of F0 (peak within +-F0/4), mean over voiced frames,
             minus its mean over harmonics: unchanged by a whole-spectrum (sox pitch) shift
  f0ltas 40  cepstrally smoothed envelope sampled at F0*2^(k/8), k = 0..39, minus its mean
  perio   6  periodicity and jitter: median and p10 of the autocorrelation peak, median and p90
             of |d log F0| between adjacent voiced frames, the fraction of steps > 0.03, median
             autocorrelation at twice the lag

Usage (numpy; the first run extracts features in ~5 min on one core and caches them):
  scripts/probe_acoustic_gender.py DATA [--cache FILE] [--misses]
DATA is an `osum synth` folder (train.jsonl, test.jsonl and their WAVs); the cache defaults to
DATA/acoustic-features.npz. Prints one markdown table row per feature set.
"""
import argparse
import collections
import importlib.util
import json
import os
import sys
import time
import wave

import numpy as np

spec = importlib.util.spec_from_file_location(
    "pef", os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_encoder_features.py"))
pef = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pef)

SR = 16000
N = 640  # samples per 40 ms frame, as in voiced_frames
# The held-out training voices of the hold-out mode, in the order of the table's columns.
HOLD = ["espeak:f5", "espeak:anika", "espeak:m8", "espeak:paul", "flite:rms"]
NFFT = 4096


def mel_fb(nb=40, nfft=1024, fmax=8000.0):
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)
    pts = imel(np.linspace(mel(0), mel(fmax), nb + 2))
    f = np.arange(nfft // 2 + 1) * SR / nfft
    fb = np.zeros((nb, len(f)))
    for i in range(nb):
        l, c, r = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((f - l) / (c - l), (r - f) / (r - c)), 0, None)
    fb /= fb.sum(1, keepdims=True) + 1e-12
    return fb


FB = mel_fb()


def levinson(r, p):
    """Batched Levinson-Durbin: r [B, p+1] -> a [B, p+1] with a[:,0]=1."""
    B = r.shape[0]
    a = np.zeros((B, p + 1))
    a[:, 0] = 1
    e = r[:, 0].copy() + 1e-9
    for i in range(1, p + 1):
        acc = r[:, i] + (a[:, 1:i] * r[:, i - 1:0:-1]).sum(1)
        k = -acc / e
        a_new = a.copy()
        a_new[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1:0:-1]
        a_new[:, i] = k
        a = a_new
        e = e * (1 - k ** 2) + 1e-12
    return a


def formants(frames, p=16):
    """F1-F3 per frame (Hz, NaN where missing) by LPC roots."""
    x = np.concatenate([frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], 1)
    x = x * np.hamming(x.shape[1])
    sp = np.fft.rfft(x, 2 * x.shape[1])
    r = np.fft.irfft(np.abs(sp) ** 2)[:, :p + 1]
    r[:, 1:] *= np.exp(-0.5 * (2 * np.pi * 40 / SR * np.arange(1, p + 1)) ** 2)  # lag window
    a = levinson(r, p)
    comp = np.zeros((len(a), p, p))
    comp[:, 0, :] = -a[:, 1:]
    comp[:, np.arange(1, p), np.arange(p - 1)] = 1
    roots = np.linalg.eigvals(comp)
    f = np.angle(roots) * SR / (2 * np.pi)
    bw = -np.log(np.abs(roots) + 1e-12) * SR / np.pi
    ok = (roots.imag > 0) & (f > 150) & (f < 5500) & (bw < 500)
    f = np.where(ok, f, np.inf)
    f.sort(1)
    out = f[:, :3]
    out[~np.isfinite(out)] = np.nan
    return out


def clip_features(path):
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    f0 = pef.f0_stats(path)
    nan = dict(ltas=np.full(40, np.nan), form=np.full(5, np.nan), ratio=np.full(4, np.nan),
               harm=np.full(24, np.nan), f0ltas=np.full(40, np.nan),
               perio=np.full(6, np.nan))
    analysis = pef.voiced_frames(x, SR)
    if analysis is None:
        return f0, nan
    frames, loud_idx, r, k, voiced = analysis
    loud = frames[loud_idx]
    if voiced.sum() < 3:
        return f0, nan
    vf = loud[voiced]
    F0 = SR / k[voiced]
    # periodicity / jitter: WSOLA splicing (sox pitch) and engine excitation leave traces here
    kv = k[voiced]
    rv = r[voiced]
    j = np.arange(len(kv))
    ym, y0, yp = rv[j, kv - 1], rv[j, kv], rv[j, np.minimum(kv + 1, N - 1)]
    den = ym - 2 * y0 + yp
    frac = np.where(np.abs(den) > 1e-9, 0.5 * (ym - yp) / np.where(den == 0, 1, den), 0)
    lfine = np.log(SR / (kv + np.clip(frac, -1, 1)))
    vidx = loud_idx[voiced]
    adj = np.diff(vidx) == 1
    dl = np.abs(np.diff(lfine))[adj] if adj.sum() else np.zeros(1)
    r2 = rv[j, np.minimum(2 * kv, N - 1)]
    perio = np.array([np.median(y0), np.percentile(y0, 10), np.median(dl) if len(dl) else 0,
                      np.percentile(dl, 90) if len(dl) else 0,
                      (dl > 0.03).mean() if len(dl) else 0, np.median(r2)])
    # LTAS (mel)
    P = np.abs(np.fft.rfft(vf * np.hanning(N), 1024)) ** 2
    lm = np.log(P @ FB.T + 1e-3)
    ltas = lm.mean(0)
    ltas -= ltas.mean()
    # centroid / tilt
    freqs = np.arange(P.shape[1]) * SR / 1024
    cent = (P * freqs).sum(1) / (P.sum(1) + 1e-9)
    band = (freqs >= 100) & (freqs <= 8000)
    lx = np.log2(freqs[band])
    ly = np.log(P[:, band] + 1e-3)
    lxc = lx - lx.mean()
    tilt = (ly - ly.mean(1, keepdims=True)) @ lxc / (lxc @ lxc)
    # formants (subsample to at most 150 frames for speed)
    sel = np.arange(len(vf))
    if len(sel) > 150:
        sel = np.linspace(0, len(vf) - 1, 150).astype(int)
    F = formants(vf[sel])
    lF = np.log(F)
    form = np.concatenate([np.nanmedian(lF, 0), [np.median(np.log(cent)), np.median(tilt)]])
    lf0 = np.log(F0)
    ratio = np.concatenate([np.nanmedian(lF - lf0[sel, None], 0),
                            [np.median(np.log(cent) - lf0)]])
    # harmonic profile + F0-relative LTAS from a fine spectrum
    S = np.log(np.abs(np.fft.rfft(vf * np.hanning(N), NFFT)) ** 2 + 1e-3)
    binhz = SR / NFFT
    rows = np.arange(len(vf))[:, None]
    H = np.arange(1, 25)
    hf = F0[:, None] * H[None, :]
    valid = hf < SR / 2 - F0[:, None] / 2
    # peak within +-F0/4 of each harmonic: max over a few offsets
    offs = np.linspace(-0.25, 0.25, 7)
    best = np.full(hf.shape, -np.inf)
    for o in offs:
        b = np.clip(np.round((hf + o * F0[:, None]) / binhz).astype(int), 0, NFFT // 2)
        best = np.maximum(best, S[rows, b])
    best[~valid] = np.nan
    harm = np.nanmean(best, 0)
    harm -= np.nanmean(harm)
    rf = F0[:, None] * 2 ** (np.arange(40)[None, :] / 8)
    b = np.round(rf / binhz).astype(int)
    v2 = rf < SR / 2
    cep = np.fft.irfft(S, NFFT)
    cep[:, 30:NFFT - 29] = 0  # lifter: keep quefrencies < 1.9 ms (below any 60-400 Hz F0 period)
    Senv = np.fft.rfft(cep, NFFT).real
    Sm = Senv[rows, np.clip(b, 0, NFFT // 2)]
    Sm[~v2] = np.nan
    f0ltas = np.nanmean(Sm, 0)
    f0ltas -= np.nanmean(f0ltas)
    return f0, dict(ltas=ltas, form=form, ratio=ratio, harm=harm, f0ltas=f0ltas, perio=perio)


GROUPS = ["f0", "ltas", "form", "ratio", "harm", "f0ltas", "perio"]


def load_manifest(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def extract(data, cache):
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=True)
        return {k: z[k] for k in z.files}
    out = {}
    for split in ["train", "test"]:
        items = load_manifest(os.path.join(data, f"{split}.jsonl"))
        audio = list(dict.fromkeys(y["audio"] for y in items if y.get("audio")))
        feats = {g: [] for g in GROUPS}
        t0 = time.time()
        for i, a in enumerate(audio):
            f0, d = clip_features(os.path.join(data, a))
            feats["f0"].append(f0)
            for g in GROUPS[1:]:
                feats[g].append(d[g])
            if i % 500 == 0:
                print(f"{split} {i}/{len(audio)} {time.time() - t0:.0f}s", file=sys.stderr)
        out[f"{split}_audio"] = np.array(audio)
        for g in GROUPS:
            out[f"{split}_{g}"] = np.array(feats[g], dtype=np.float64)
    np.savez(cache, **out)
    return out


def fill(xtr, xte):
    """Replace NaNs by the training column mean (rare: e.g. harmonics above Nyquist)."""
    m = np.nanmean(xtr, 0)
    m = np.where(np.isfinite(m), m, 0)
    return np.where(np.isnan(xtr), m, xtr), np.where(np.isnan(xte), m, xte)


def score(xtr, gtr, xte, gte):
    xtr, xte = fill(xtr, xte)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    w, b = pef.fit_softmax((xtr - mu) / sd, gtr, 2)
    return np.argmax((xte - mu) / sd @ w + b, 1) == gte


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="an `osum synth` folder")
    ap.add_argument("--cache", help="feature cache (default DATA/acoustic-features.npz)")
    ap.add_argument("--misses", action="store_true", help="test misses per voice and factor")
    args = ap.parse_args()
    data = args.data
    F = extract(data, args.cache or os.path.join(data, "acoustic-features.npz"))
    for split in ["train", "test"]:
        # F2/F0 and F3/F0 alone: the ratios that survive a whole-spectrum shift best.
        F[f"{split}_r2"] = F[f"{split}_ratio"][:, 1:3]
    tr_items = load_manifest(os.path.join(data, "train.jsonl"))
    te_items = load_manifest(os.path.join(data, "test.jsonl"))
    first = {}
    for y in tr_items:
        if y.get("audio"):
            first.setdefault(y["audio"], y)
    ytr = [first[a] for a in F["train_audio"]]
    gtr = np.array([y["gender"] == "male" for y in ytr], int)
    spk = np.array([y["speaker"] for y in ytr])
    te_index = {a: i for i, a in enumerate(F["test_audio"])}
    asked = [y for y in te_items if y.get("audio") and "gender" in y.get("tasks", [])]
    rows = np.array([te_index[y["audio"]] for y in asked])
    gte = np.array([y["gender"] == "male" for y in asked], int)
    spte = np.array([y["speaker"] for y in asked])
    ho = np.isin(spk, HOLD)

    sets = [("f0", ["f0"]), ("ltas", ["ltas"]), ("form", ["form"]), ("ratio", ["ratio"]),
            ("harm", ["harm"]), ("f0ltas", ["f0ltas"]),
            ("f0+ltas", ["f0", "ltas"]), ("f0+form", ["f0", "form"]), ("f0+ratio", ["f0", "ratio"]),
            ("f0+harm", ["f0", "harm"]), ("f0+f0ltas", ["f0", "f0ltas"]),
            ("f0+form+ratio", ["f0", "form", "ratio"]),
            ("ratio+harm", ["ratio", "harm"]), ("f0+ratio+harm", ["f0", "ratio", "harm"]),
            ("f0+ltas+ratio+harm", ["f0", "ltas", "ratio", "harm"]),
            ("perio", ["perio"]), ("f0+perio", ["f0", "perio"]), ("ratio+perio", ["ratio", "perio"]),
            ("f0+ratio+perio", ["f0", "ratio", "perio"]),
            ("f0+form+ratio+perio", ["f0", "form", "ratio", "perio"]),
            ("r2", ["r2"]), ("f0+r2+perio", ["f0", "r2", "perio"]),
            ("all", GROUPS)]
    tv = ["espeak:f4", "espeak:belinda", "espeak:steph", "espeak:m6", "espeak:john", "flite:awb"]
    lines = ["| feature set | dim | test asked (332) | " + " | ".join(v.split(":")[1] for v in tv)
             + " | hold-out (264) | " + " | ".join(v.split(":")[1] for v in HOLD) + " |",
             "|" + "---|" * (4 + len(tv) + len(HOLD))]
    print("\n".join(lines), flush=True)
    for name, gs in sets:
        xtr = np.hstack([F[f"train_{g}"] for g in gs])
        xte = np.hstack([F[f"test_{g}"] for g in gs])[rows]
        ok = score(xtr, gtr, xte, gte)
        okh = score(xtr[~ho], gtr[~ho], xtr[ho], gtr[ho])
        pv = [f"{ok[spte == v].sum()}/{(spte == v).sum()}" for v in tv]
        ph = [f"{okh[spk[ho] == v].sum()}/{(spk[ho] == v).sum()}" for v in HOLD]
        lines.append(f"| {name} | {xtr.shape[1]} | {ok.mean():.3f} | " + " | ".join(pv)
                     + f" | {okh.mean():.3f} | " + " | ".join(ph) + " |")
        print(lines[-1], flush=True)
        if args.misses:
            miss = collections.Counter((spte[i], pef.factor(asked[i])) for i in np.where(~ok)[0])
            print("   test misses:", dict(miss.most_common()))


if __name__ == "__main__":
    main()
