#!/usr/bin/env python3
"""Goldens for tests/whisper.rs: CTranslate2 4.8.5 running Whisper tiny.en on goforward.raw.

Setup (once):  python3 -m venv /tmp/ct2 && /tmp/ct2/bin/pip install ctranslate2==4.8.5 numpy
               apt-get install pocketsphinx-testdata      # goforward.raw, 16 kHz s16le mono
Run:           /tmp/ct2/bin/python scripts/goldens/whisper_tiny_en.py MODEL_DIR \
                   [/usr/share/pocketsphinx/test/data/goforward.raw] > scripts/goldens/whisper_tiny_en.json
MODEL_DIR holds the tiny.en model.bin that `osum setup` installs (models/whisper-tiny.en).

The log-mel features are computed here with numpy exactly as REFERENCE.md §2 states (30 s
zero-padded input, 3000 frames), then CTranslate2 (compute_type float32) gives the encoder
output and greedy tokens from [<|startoftranscript|>, <|notimestamps|>].
"""
import json
import sys

import ctranslate2
import numpy as np

SR, N_FFT, HOP, N_MELS, N_SAMPLES = 16000, 400, 160, 80, 480000


def mel_filters():
    """Slaney mel filterbank [80, 201] (librosa filters.mel(16000, 400, 80), REFERENCE §2 step 3)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), N_MELS + 2))
    fdiff = np.diff(pts)
    ramps = pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    return w * (2.0 / (pts[2:] - pts[:-2]))[:, None]


def log_mel(audio):
    """REFERENCE §2: padded to 30 s, periodic Hann STFT (reflect-centred), drop the last frame."""
    audio = np.pad(audio.astype(np.float64), (0, max(0, N_SAMPLES - len(audio))))[:N_SAMPLES]
    x = np.pad(audio, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n_frames = 1 + len(audio) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
    mel = mel_filters() @ power[:-1].T
    logm = np.log10(np.maximum(mel, 1e-10))
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32)


def main():
    model_dir = sys.argv[1]
    raw = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/pocketsphinx/test/data/goforward.raw"
    audio = np.fromfile(raw, dtype="<i2").astype(np.float32) / 32768.0
    feats = log_mel(audio)
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32")
    sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None]))
    enc = np.array(model.encode(sv, to_cpu=True))[0]
    res = model.generate(sv, [[50257, 50362]], beam_size=1, max_length=64)
    rows = [0, 1, 50, 100, 500, 1499]
    out = {
        "source": "CTranslate2 %s, compute_type float32, scripts/goldens/whisper_tiny_en.py" % ctranslate2.__version__,
        "audio": raw.split("/")[-1],
        "mel_frames": int(feats.shape[1]),
        "mel_sum": float(feats.astype(np.float64).sum()),
        "enc_shape": list(enc.shape),
        "enc_mean": float(enc.astype(np.float64).mean()),
        "enc_std": float(enc.astype(np.float64).std()),
        "enc_rows": rows,
        "enc_cols": 16,
        "enc_slice": [[float(v) for v in enc[r, :16]] for r in rows],
        "tokens": [int(t) for t in res[0].sequences_ids[0]],
    }
    if len(sys.argv) > 3:
        feats.tofile(sys.argv[3])  # optional raw f32 dump for debugging, never committed
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
