//! The real SmolLM2-135M-Instruct (GGUF, Q4_1; `osum setup`) against HF transformers 4.46.3 on
//! the same file (`scripts/goldens/smollm2_logits.py` → `smollm2_logits.json`): prompt ids
//! exactly, the top-10 next-token ids and logits within 1e-2 (DATA.md's tolerance), the first 16
//! logits within 1e-2, and 8 greedy tokens exactly. Skipped, with a notice, when the model is
//! not installed.

use osum::engine::{cpu_device, no_grad};
use osum::model::llm::sampling::argmax;
use osum::model::llm::GenerationConfig;
use osum::model::prompt::{Segment, Template};
use osum::model::text::TextModel;

fn model() -> Option<TextModel> {
    let path = osum::model::home().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        eprintln!(
            "skipped: {} not installed (run `osum setup`)",
            path.display()
        );
        return None;
    }
    Some(TextModel::open_gguf(&path, Template::SmolLm2, &cpu_device()).unwrap())
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/goldens/smollm2_logits.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn smollm2_matches_transformers_on_ids_logits_and_greedy_tokens() {
    let Some(m) = model() else { return };
    for case in golden()["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = m
            .encode_segments(&[Segment::Text(text.into())])
            .unwrap()
            .concat();
        assert_eq!(ids, u32s(&case["ids"]), "ids of {text:?}");
        let logits = no_grad(|| {
            let h = m.llm.hidden_states(&m.llm.embed_ids(&ids)?, None)?;
            let last = h.narrow(1, ids.len() - 1, 1)?;
            m.llm.logits(&last)
        })
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
        let mut worst = 0f64;
        for (id, want) in u32s(&case["top_ids"]).iter().zip(f64s(&case["top_logits"])) {
            worst = worst.max((logits[*id as usize] as f64 - want).abs());
        }
        for (got, want) in logits.iter().zip(f64s(&case["logits_first_16"])) {
            worst = worst.max((*got as f64 - want).abs());
        }
        println!("{text:?}: max |logit − transformers| = {worst:.2e}");
        assert!(worst <= 1e-2, "{text:?}: logits differ by {worst}");
        assert_eq!(argmax(&logits), u32s(&case["top_ids"])[0]);
        let cfg = GenerationConfig::greedy(8, vec![]);
        let (gen, _) = m.generate_text(&ids, None, &cfg, &mut |_| {}).unwrap();
        assert_eq!(
            gen.tokens,
            u32s(&case["greedy_8"]),
            "greedy tokens of {text:?}"
        );
    }
}
