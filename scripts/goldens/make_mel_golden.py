#!/usr/bin/env python3
"""Golden log-mel values for tests/audio.rs, computed with librosa (REFERENCE.md §2).

Setup:  python3 -m venv /tmp/melvenv && /tmp/melvenv/bin/pip install librosa numpy
Run:    /tmp/melvenv/bin/python scripts/goldens/make_mel_golden.py
Input:  scripts/goldens/mel_clip.wav (espeak-ng sentence, sox'd to 16 kHz mono 16-bit).
Output: scripts/goldens/mel_golden.json: for both modes ("whisper": padded to 30 s, "osum": no
        padding) the frame count, global max and min, the sum over the 80 bands of every frame
        of speech, and the full 80 values of a few frames.
"""
import json
import os
import wave

import librosa
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N_FFT, HOP, N_MELS, SR, N_SAMPLES = 400, 160, 80, 16000, 480000


def load_clip(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SR
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def log_mel(audio):
    """Whisper's log_mel_spectrogram, with librosa's STFT and filterbank."""
    stft = librosa.stft(audio, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="reflect")
    power = np.abs(stft[:, :-1]) ** 2  # drop the last frame
    filters = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)
    mel = filters @ power
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0  # [80, T]


def summarize(mel, frames, n_sums):
    """The first n_sums frames' band sums, full values of `frames`, and the minimum (the floor)."""
    return {
        "n_frames": int(mel.shape[1]),
        "max": float(mel.max()),
        "min": float(mel.min()),
        "frame_sums": [round(float(v), 6) for v in mel[:, :n_sums].astype(np.float64).sum(axis=0)],
        "frames": {str(f): [round(float(v), 7) for v in mel[:, f]] for f in frames},
    }


def main():
    audio = load_clip(os.path.join(HERE, "mel_clip.wav"))
    osum = log_mel(audio)
    whisper = log_mel(np.pad(audio[:N_SAMPLES], (0, max(0, N_SAMPLES - len(audio)))))
    t = osum.shape[1]
    frames = sorted({0, 1, t // 4, t // 2, 3 * t // 4, t - 2, t - 1})
    golden = {
        "clip": "mel_clip.wav",
        "n_samples": int(len(audio)),
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "osum": summarize(osum, frames, t),
        # Whisper mode: 3000 frames. Sums over the speech and a few padding frames; past those
        # the padding is silence, every value at the floor ("min"). Full frames include ones
        # across the end of speech and the last one.
        "whisper": summarize(whisper, frames + [t, t + 1, t + 3, 2999], t + 10),
    }
    with open(os.path.join(HERE, "mel_golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
