//! The SentencePiece implementation against Google's library on real models trained here (BPE and
//! unigram with byte fallback, nmt_nfkc and user-defined `[unusedN]` pieces; two small ones with
//! other normalizer flags and no byte fallback), and against corrupt model files.
//!
//! Goldens: `tests/data/spm/goldens.json`, made by `scripts/goldens/make_spm_goldens.py` with the
//! `sentencepiece` Python package. Tolerance: none; ids, pieces and decoded text must be equal.

use osum::model::tokenizer::sentencepiece::{ModelType, PieceType, SentencePiece, SpmError};
use serde_json::Value;

mod golden;
use golden::ids;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/spm")
        .join(name)
}

fn goldens() -> Value {
    let text = std::fs::read_to_string(data("goldens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn opt_id(v: &Value) -> Option<u32> {
    let x = v.as_i64().unwrap();
    (x >= 0).then_some(x as u32)
}

fn fnv1a64(ids: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Every golden of one model; all mismatches are collected so one run shows them all.
fn check_model(kind: &str, expect_type: ModelType) {
    let g = &goldens()[kind];
    let sp = SentencePiece::load(data(&format!("{kind}.model"))).unwrap();
    assert_eq!(sp.model_type(), expect_type);
    assert_eq!(sp.vocab_size() as u64, g["vocab_size"].as_u64().unwrap());
    assert_eq!(Some(sp.unk_id()), opt_id(&g["unk_id"]));
    assert_eq!(sp.bos_id(), opt_id(&g["bos_id"]));
    assert_eq!(sp.eos_id(), opt_id(&g["eos_id"]));
    assert_eq!(sp.pad_id(), opt_id(&g["pad_id"]));
    for pair in g["id_to_piece"].as_array().unwrap() {
        let id = pair[0].as_u64().unwrap() as u32;
        assert_eq!(sp.id_to_piece(id), pair[1].as_str(), "id_to_piece({id})");
    }
    for pair in g["piece_to_id"].as_array().unwrap() {
        let piece = pair[0].as_str().unwrap();
        assert_eq!(
            sp.piece_to_id(piece) as u64,
            pair[1].as_u64().unwrap(),
            "piece_to_id({piece:?})"
        );
    }
    assert_eq!(sp.piece_type(sp.unk_id()), Some(PieceType::Unknown));
    assert_eq!(
        sp.piece_type(sp.piece_to_id("[unused9]")),
        Some(PieceType::UserDefined)
    );

    let mut failures = Vec::new();
    let cases = g["encode"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let got = sp.encode(text);
        if got != want {
            let want_pieces: Vec<&str> = case["pieces"]
                .as_array()
                .map(|a| a.iter().map(|p| p.as_str().unwrap()).collect())
                .unwrap_or_default();
            failures.push(format!(
                "encode {text:?}\n  want {want:?}\n  got  {got:?}\n  want pieces {want_pieces:?}\n  got pieces  {:?}",
                sp.encode_pieces(text)
            ));
            continue;
        }
        if !case["ids_bos"].is_null() {
            let with_bos = sp.encode_with(text, true, false);
            if with_bos != ids(&case["ids_bos"]) {
                failures.push(format!("encode with BOS {text:?}: got {with_bos:?}"));
            }
        }
        let decoded = sp.decode(&got).unwrap();
        if decoded != case["decoded"].as_str().unwrap() {
            failures.push(format!(
                "decode of {text:?}: want {:?} got {decoded:?}",
                case["decoded"]
            ));
        }
    }
    for case in g["decode"].as_array().unwrap() {
        let list = ids(&case["ids"]);
        let got = sp.decode(&list).unwrap();
        if got != case["text"].as_str().unwrap() {
            failures.push(format!(
                "decode {list:?}: want {:?} got {got:?}",
                case["text"]
            ));
        }
    }
    // One long string: id count and FNV-1a hash of the ids (the script's recipe).
    let corpus = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/goldens/spm_corpus.txt"),
    )
    .unwrap();
    let long = corpus.lines().collect::<Vec<_>>().join(" ").repeat(3);
    let got = sp.encode(&long);
    let want_len = g["long"]["len"].as_u64().unwrap() as usize;
    let want_hash: u64 = g["long"]["fnv1a64"].as_str().unwrap().parse().unwrap();
    if got.len() != want_len || fnv1a64(&got) != want_hash {
        failures.push(format!(
            "long string: {} ids, hash {}; want {want_len} ids, hash {want_hash}",
            got.len(),
            fnv1a64(&got)
        ));
    }
    assert!(
        failures.is_empty(),
        "{kind}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn bpe_matches_sentencepiece() {
    check_model("bpe", ModelType::Bpe);
}

#[test]
fn unigram_matches_sentencepiece() {
    check_model("unigram", ModelType::Unigram);
}

/// No byte fallback (unknown runs merge), identity normalizer, spaces kept, whitespace as suffix.
#[test]
fn bpe_plain_matches_sentencepiece() {
    check_model("bpe_plain", ModelType::Bpe);
}

/// No byte fallback, identity normalizer, no dummy prefix.
#[test]
fn unigram_plain_matches_sentencepiece() {
    check_model("unigram_plain", ModelType::Unigram);
}

#[test]
fn openpangu_chat_markers_stay_whole() {
    for kind in ["bpe", "unigram"] {
        let sp = SentencePiece::load(data(&format!("{kind}.model"))).unwrap();
        let ids = sp.encode("[unused9]系统：你好[unused10]");
        let u9 = sp.piece_to_id("[unused9]");
        let u10 = sp.piece_to_id("[unused10]");
        assert!(
            ids.contains(&u9) && ids.last() == Some(&u10),
            "{kind}: {ids:?}"
        );
        // The full-width colon is NFKC-normalized to ':' before segmentation.
        assert!(sp.normalize("系统：").ends_with(':'), "{kind}");
    }
}

#[test]
fn decode_rejects_ids_outside_the_vocabulary() {
    let sp = SentencePiece::load(data("bpe.model")).unwrap();
    let n = sp.vocab_size() as u32;
    assert!(matches!(
        sp.decode(&[5, n]),
        Err(SpmError::IdOutOfRange { id, .. }) if id == n
    ));
    assert!(sp.decode(&[u32::MAX]).is_err());
    assert_eq!(sp.id_to_piece(n), None);
}

#[test]
fn control_and_odd_characters_never_panic() {
    let sp = SentencePiece::load(data("unigram.model")).unwrap();
    let bpe = SentencePiece::load(data("bpe.model")).unwrap();
    let mut s = String::new();
    for c in (0u32..0x250).chain(0x2000..0x2100).chain(0xfff0..0x10010) {
        if let Some(ch) = char::from_u32(c) {
            s.push(ch);
        }
    }
    s.push_str("\u{10ffff}\u{e000}▁▁ [unused9[unused10]]");
    for model in [&sp, &bpe] {
        let ids = model.encode(&s);
        assert!(!ids.is_empty());
        model.decode(&ids).unwrap();
        for chunk in s.as_bytes().chunks(7) {
            let t = String::from_utf8_lossy(chunk);
            let ids = model.encode(&t);
            model.decode(&ids).unwrap();
        }
        // Every id decodes on its own.
        let all: Vec<u32> = (0..model.vocab_size() as u32).collect();
        model.decode(&all).unwrap();
    }
}

fn load_err(bytes: &[u8]) -> SpmError {
    match SentencePiece::from_bytes(bytes, "corrupt.model") {
        Ok(_) => panic!("a corrupt model loaded"),
        Err(e) => e,
    }
}

#[test]
fn truncated_models_are_errors() {
    let bytes = std::fs::read(data("bpe.model")).unwrap();
    // Every cut inside the first pieces, then a sweep over the whole file.
    let cuts = (0..200).chain((200..bytes.len()).step_by(997));
    for cut in cuts {
        if let Ok(sp) = SentencePiece::from_bytes(&bytes[..cut], "cut.model") {
            // A cut that falls between fields can still be a consistent model; it must work.
            let ids = sp.encode("Hello 你好 [unused9]");
            sp.decode(&ids).unwrap();
        }
    }
    let e = load_err(&bytes[..bytes.len() - 3]);
    let msg = e.to_string();
    assert!(
        msg.contains("corrupt.model") && msg.contains("byte"),
        "{msg}"
    );
    assert!(matches!(load_err(&[]), SpmError::Invalid { .. }));
}

#[test]
fn bad_varints_and_absurd_lengths_are_errors() {
    // A varint that does not end within 10 bytes.
    let e = load_err(&[
        0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    assert!(matches!(e, SpmError::Malformed { offset: 1, .. }), "{e}");
    // A pieces field claiming 2^62 bytes.
    let mut b = vec![0x0a];
    b.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    let e = load_err(&b);
    assert!(e.to_string().contains("exceeds"), "{e}");
    // A pieces field claiming 4 GB inside a real model.
    let mut bytes = std::fs::read(data("unigram.model")).unwrap();
    assert_eq!(bytes[0], 0x0a);
    bytes.splice(1..2, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    let e = load_err(&bytes);
    assert!(matches!(e, SpmError::Malformed { offset: 0, .. }), "{e}");
    // Flipping single bytes anywhere in the header region never panics.
    let orig = std::fs::read(data("unigram.model")).unwrap();
    for i in 0..300 {
        for v in [0x00, 0x07, 0x80, 0xff] {
            let mut m = orig.clone();
            m[i] = v;
            if let Ok(sp) = SentencePiece::from_bytes(&m, "flip.model") {
                let ids = sp.encode("flip test 你好");
                let _ = sp.decode(&ids);
            }
        }
    }
}

/// Seeded byte corruptions anywhere in the file, the normalizer's charsmap (most of the file)
/// included: loading may fail, but nothing panics and a model that loads still encodes.
#[test]
fn corrupted_bytes_anywhere_never_panic() {
    let orig = std::fs::read(data("unigram.model")).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut loaded = 0;
    for _ in 0..400 {
        let mut m = orig.clone();
        for _ in 0..4 {
            let i = (next() % m.len() as u64) as usize;
            m[i] = next() as u8;
        }
        if let Ok(sp) = SentencePiece::from_bytes(&m, "flip.model") {
            loaded += 1;
            let ids = sp.encode("ＡＢＣ：全角 ①②  spaces\t[unused9]你好🦀 é");
            let _ = sp.decode(&ids);
        }
    }
    // Most corruptions land in the charsmap or the piece strings and still load.
    assert!(loaded > 100, "{loaded}");
}

#[test]
fn inconsistent_models_are_errors() {
    // One piece, not <unk>: well-formed protobuf, but no unknown piece.
    let piece = [0x0a, 0x01, b'a', 0x18, 0x01];
    let mut m = vec![0x0a, piece.len() as u8];
    m.extend_from_slice(&piece);
    let e = load_err(&m);
    assert!(e.to_string().contains("unknown piece"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = SentencePiece::load("/nonexistent/tokenizer.model").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tokenizer.model"));
}

/// Encoding speed on the corpus repeated to ~1 MB, one call per line (the way prompts are
/// encoded) and as one long string. Run by hand:
/// `cargo test --release --test sentencepiece -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    let corpus = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/goldens/spm_corpus.txt"),
    )
    .unwrap();
    let reps = 1_000_000 / corpus.len() + 1;
    let lines: Vec<&str> = corpus.lines().collect();
    let long = corpus.replace('\n', " ").repeat(reps);
    for kind in ["bpe", "unigram"] {
        let sp = SentencePiece::load(data(&format!("{kind}.model"))).unwrap();
        let t = std::time::Instant::now();
        let mut n = 0;
        for _ in 0..reps {
            for l in &lines {
                n += sp.encode(l).len();
            }
        }
        let per_line = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let m = sp.encode(&long).len();
        let whole = t.elapsed().as_secs_f64();
        let ids = sp.encode(&long);
        let t = std::time::Instant::now();
        let text = sp.decode(&ids).unwrap();
        let dec = t.elapsed().as_secs_f64();
        let mb = long.len() as f64 / 1e6;
        println!(
            "{kind}: {mb:.2} MB; per line {:.2} MB/s ({n} ids); one string {:.2} MB/s ({m} ids); decode {:.1} MB/s ({} bytes)",
            mb / per_line,
            mb / whole,
            mb / dec.max(1e-9),
            text.len()
        );
    }
}
