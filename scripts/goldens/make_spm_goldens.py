#!/usr/bin/env python3
"""SentencePiece models and goldens for tests/sentencepiece.rs (DATA.md, last section).

openPangu ships only a SentencePiece `tokenizer.model`, which cannot be had offline, so the Rust
implementation is checked against real models trained here with Google's own library.

Setup:  python3 -m venv /tmp/venv-sentencepiece && /tmp/venv-sentencepiece/bin/pip install sentencepiece
Run:    /tmp/venv-sentencepiece/bin/python scripts/goldens/make_spm_goldens.py
Input:  scripts/goldens/spm_corpus.txt (English, Chinese, digits, emoji, full-width colons, the
        openPangu chat markers [unused9]/[unused10]/...).
Output: tests/data/spm/bpe.model, tests/data/spm/unigram.model (model_type bpe / unigram,
        byte_fallback, add_dummy_prefix, the default nmt_nfkc normalizer, user-defined symbols),
        tests/data/spm/{bpe,unigram}_plain.model (other normalizer flags, see MODELS) and
        tests/data/spm/goldens.json: per model the special ids, the vocabulary size, a few
        id <-> piece pairs, and for every test string the ids `encode` gives (with and without
        BOS for the hand-picked ones) and the text `decode` gives back; plus id lists that were
        decoded directly (control ids, unknown id, lone and invalid byte pieces, leading
        whitespace pieces). Training is deterministic (one thread), so a re-run rewrites the
        same files.
"""
import json
import os
import random
import re

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "data", "spm")
CORPUS = os.path.join(HERE, "spm_corpus.txt")

USER_DEFINED = ["[unused9]", "[unused10]", "[unused16]", "[unused17]"]
# Strings the Rust encoder must reproduce id for id.
TESTS = [
    "",
    " ",
    "   ",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces  ",
    "multiple    spaces   between\t\twords",
    "line one\nline two\r\nline three",
    "[unused9]系统：你好[unused10]",
    "[unused9]系统：你是一个乐于助人的助手。[unused10][unused9]用户：今天天气怎么样？ /no_think"
    "[unused10][unused9]助手：",
    "[unused9][unused10][unused16][unused17]",
    "[unused9 is not a marker] and [unused1] neither",
    " [unused9] spaced [unused10] ",
    "今天天气很好，我们一起去公园散步吧。",
    "时间：上午九点",
    "时间:上午九点",
    "ＡＢＣ１２３：ｆｕｌｌ　ｗｉｄｔｈ！",
    "①②③ ㍿ ﬁne ™ ½ ｶﾀｶﾅ",
    "e\u0301 vs é, A\u030a vs Å",
    "non\u00a0breaking\u3000ideographic\u2003em space",
    "zero\u200bwidth\ufeffbom",
    "Ω≈ç√∫ µ",
    "안녕하세요 세계",
    "สวัสดีครับ",
    "龘靐齉 rare CJK",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters",
    "I ❤️ 🦀 and 🎉🎉🎉!",
    "👨‍👩‍👧 family, 🏳️‍🌈 flag, 👍🏽 toned",
    "The year 2024 had 366 days; π≈3.14159, 1,000,000 and 0.5%.",
    "13800138000",
    "control\x01chars\x07and\x7fdel\x1b[0m",
    "a▁b ▁▁ ▁",
    "<s> </s> <unk> <0x41> literal markers",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Mixed text: 今天我们学习 speech recognition 和 tokenizer 的原理。",
    "OSUM 是一个开源的语音理解模型，基于 Whisper 和大语言模型。",
    "Transcribe the recording and tell me the emotion of the speaker.",
    "“quoted” ‘single’ – dash — long … ellipsis",
    "\u0000nul\u0000",
    "tab\tend\t",
]


# The two models the brief asks for (byte fallback, dummy prefix, nmt_nfkc), and two small ones
# that reach the other branches: no byte fallback (runs of unknown characters merge into one
# <unk>), the identity normalizer (no charsmap), no extra-whitespace removal, whitespace as a
# suffix, no dummy prefix.
MODELS = {
    "bpe": dict(model_type="bpe", vocab_size=1000, byte_fallback=True),
    "unigram": dict(model_type="unigram", vocab_size=1000, byte_fallback=True),
    "bpe_plain": dict(
        model_type="bpe",
        vocab_size=700,
        byte_fallback=False,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        treat_whitespace_as_suffix=True,
        character_coverage=0.995,
    ),
    "unigram_plain": dict(
        model_type="unigram",
        vocab_size=700,
        byte_fallback=False,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        character_coverage=0.995,
    ),
}


def train(kind):
    prefix = os.path.join(OUT, kind)
    args = dict(
        input=CORPUS,
        model_prefix=prefix,
        add_dummy_prefix=True,
        normalization_rule_name="nmt_nfkc",
        user_defined_symbols=USER_DEFINED,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    args.update(MODELS[kind])
    spm.SentencePieceTrainer.train(**args)
    os.remove(prefix + ".vocab")
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def random_texts(n, seed):
    """Seeded mixtures of corpus characters, rare characters, spaces and the chat markers, so
    ties and fallbacks occur in places nobody chose by hand."""
    rng = random.Random(seed)
    with open(CORPUS, encoding="utf-8") as f:
        corpus = f.read()
    common = sorted(set(corpus) - {"\n"})
    rare = list("ΩΣλ한국어ñüßø€£¥©®°±×÷ＡＺａｚ０９：；！？　（）①⑩㈱ﬀ…\u00a0\u2009\t\n\x01\x1f\x7f") + [
        "🦀", "🎉", "👍🏽", "❤️", "e\u0301", "▁",
    ]
    words = corpus.split()
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.35:
                parts.append(rng.choice(words))
            elif r < 0.6:
                parts.append("".join(rng.choice(common) for _ in range(rng.randint(1, 6))))
            elif r < 0.75:
                parts.append(rng.choice(rare))
            elif r < 0.85:
                parts.append(rng.choice(USER_DEFINED))
            else:
                parts.append(" " * rng.randint(1, 3))
        out.append("".join(parts))
    return out


def decode_cases(sp):
    """Id lists decoded directly, for the decoder's corners."""
    pid = sp.piece_to_id
    space = pid("▁")
    cases = [
        [sp.bos_id()] + sp.encode("Hello world") + [sp.eos_id()],
        [sp.unk_id()],
        [sp.unk_id(), sp.unk_id()] + sp.encode("after unknowns"),
        # UTF-8 for 你 split across byte pieces, then a word: reassembled.
        [pid("<0xE4>"), pid("<0xBD>"), pid("<0xA0>")] + sp.encode("world"),
        # An incomplete sequence cut by an ASCII byte, then a lone continuation byte.
        [pid("<0xE4>"), pid("<0xBD>"), pid("<0x41>"), pid("<0x80>")] + sp.encode("x"),
        # Byte pieces first, then a piece with a leading whitespace marker.
        [pid("<0x41>")] + sp.encode("hello"),
        # Leading whitespace-only pieces.
        [space, space] + sp.encode("hello"),
        [space] + [sp.bos_id()] + sp.encode("hello"),
        [sp.bos_id(), space] + sp.encode("hello") + [space],
        list(reversed(sp.encode("The quick brown fox"))),
        [pid("[unused9]"), pid("[unused10]")] + sp.encode("你好"),
    ]
    return [{"ids": ids, "text": sp.decode(ids)} for ids in cases]


def corpus_lines():
    with open(CORPUS, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


# Beyond the hand-picked TESTS: every corpus line and 150 seeded random mixtures (ids and
# decoded text only, to keep the file small).
EXTRA = corpus_lines() + random_texts(150, seed=20261125)
LONG = " ".join(corpus_lines()) * 3


def golden(sp):
    probe_ids = sorted({0, 1, 2, 3, 4, 5, 10, 100, 259, 260, 300, 500, sp.get_piece_size() - 1})
    probe_pieces = ["▁the", "▁", "<0x41>", "[unused9]", "不存在的词", "<s>", "</s>", "<unk>", "："]
    return {
        "vocab_size": sp.get_piece_size(),
        "unk_id": sp.unk_id(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "pad_id": sp.pad_id(),
        "id_to_piece": [[i, sp.id_to_piece(i)] for i in probe_ids],
        "piece_to_id": [[p, sp.piece_to_id(p)] for p in probe_pieces],
        "encode": [
            {
                "text": t,
                "ids": sp.encode(t),
                "ids_bos": sp.encode(t, add_bos=True),
                "pieces": sp.encode(t, out_type=str),
                "decoded": sp.decode(sp.encode(t)),
            }
            for t in TESTS
        ]
        + [
            {"text": t, "ids": sp.encode(t), "decoded": sp.decode(sp.encode(t))}
            for t in EXTRA
        ],
        "decode": decode_cases(sp),
        "long": long_case(sp),
    }


def fnv1a64(ids):
    """FNV-1a over the ids as little-endian u32 bytes (the Rust test computes the same)."""
    h = 0xCBF29CE484222325
    for i in ids:
        for b in i.to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def long_case(sp):
    """One long string (all corpus lines joined by a space, three times): its id count and hash,
    for many merges and lattice ties in a single call without storing every id."""
    ids = sp.encode(LONG)
    return {"recipe": "corpus lines joined by ' ', repeated 3 times", "len": len(ids),
            "fnv1a64": str(fnv1a64(ids))}


def main():
    os.makedirs(OUT, exist_ok=True)
    out = {"sentencepiece_version": spm.__version__}
    for kind in MODELS:
        out[kind] = golden(train(kind))
    with open(os.path.join(OUT, "goldens.json"), "w", encoding="utf-8") as f:
        text = json.dumps(out, ensure_ascii=False, indent=1)
        # One line per id list keeps the file readable and a third of the size.
        text = re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]",
                      lambda m: "[" + ",".join(m.group(1).split(",")).replace(" ", "").replace("\n", "") + "]",
                      text)
        f.write(text + "\n")
    for kind in MODELS:
        path = os.path.join(OUT, kind + ".model")
        print(kind, os.path.getsize(path), "bytes, vocab", out[kind]["vocab_size"])


if __name__ == "__main__":
    main()
