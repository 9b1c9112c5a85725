//! Unit tests of the OSUM key normalizer and the view checks. Whole checkpoints written by real
//! `torch.save` are tested in `tests/pytorch.rs`.

use super::*;

fn norm(raw: &str) -> (Component, String, Option<String>) {
    let k = normalize_key(raw, &KeyLayout::default());
    (k.component, k.name, k.adapter)
}

fn base(name: &str) -> (Component, String, Option<String>) {
    (Component::LlmBase, name.to_string(), None)
}

#[test]
fn peft_keys_normalize_to_hf_llama_names() {
    let p = "llama_model.base_model.model.model.layers.3.self_attn";
    assert_eq!(
        norm(&format!("{p}.q_proj.base_layer.weight")),
        base("model.layers.3.self_attn.q_proj.weight")
    );
    assert_eq!(
        norm(&format!("{p}.o_proj.base_layer.bias")),
        base("model.layers.3.self_attn.o_proj.bias")
    );
    // Older PEFT: no base_layer.
    assert_eq!(
        norm(&format!("{p}.q_proj.weight")),
        base("model.layers.3.self_attn.q_proj.weight")
    );
    assert_eq!(
        norm(&format!("{p}.k_proj.lora_A.default.weight")),
        (
            Component::LoraA,
            "model.layers.3.self_attn.k_proj".into(),
            Some("default".into())
        )
    );
    assert_eq!(
        norm(&format!("{p}.k_proj.lora_B.speech.weight")),
        (
            Component::LoraB,
            "model.layers.3.self_attn.k_proj".into(),
            Some("speech".into())
        )
    );
    assert_eq!(
        norm("llama_model.base_model.model.lm_head.weight"),
        base("lm_head.weight")
    );
    // An LLM without PEFT.
    assert_eq!(
        norm("llama_model.model.norm.weight"),
        base("model.norm.weight")
    );
    // modules_to_save: the trained copy is the weight, the original is ignored.
    assert_eq!(
        norm("llama_model.base_model.model.lm_head.modules_to_save.default.weight"),
        base("lm_head.weight")
    );
    assert_eq!(
        norm("llama_model.base_model.model.lm_head.original_module.weight").0,
        Component::Ignored
    );
    // Other PEFT tensors are kept under their raw key.
    let raw = format!("{p}.q_proj.lora_magnitude_vector.default.weight");
    assert_eq!(norm(&raw), (Component::Other, raw.clone(), None));
}

#[test]
fn encoder_adapter_and_wrappers() {
    assert_eq!(
        norm("encoder.encoders.0.feed_forward.w_1.weight"),
        (
            Component::Encoder,
            "encoder.encoders.0.feed_forward.w_1.weight".into(),
            None
        )
    );
    // DDP's `module.` is dropped.
    assert_eq!(
        norm("module.module.encoder.after_norm.bias"),
        (Component::Encoder, "encoder.after_norm.bias".into(), None)
    );
    for k in [
        "down_sample_2.conv.4.weight",
        "speech_transformer.encoders.1.norm1.weight",
        "speech_llama_proj.bias",
        "speech_token_emded.weight",
    ] {
        assert_eq!(norm(k), (Component::Adapter, k.into(), None));
    }
    // Not a prefix match on a longer module name.
    assert_eq!(norm("speech_llama_projector.weight").0, Component::Other);
    assert_eq!(norm("ctc.ctc_lo.weight").0, Component::Other);
    // A custom layout.
    let layout = KeyLayout {
        llm_prefix: "llm.".into(),
        ..KeyLayout::default()
    };
    assert_eq!(
        normalize_key(
            "llm.base_model.model.model.layers.0.mlp.gate_proj.base_layer.weight",
            &layout
        )
        .name,
        "model.layers.0.mlp.gate_proj.weight"
    );
    // Another encoder prefix still gives WeNet names.
    let layout = KeyLayout {
        encoder_prefix: "speech_encoder.".into(),
        ..KeyLayout::default()
    };
    assert_eq!(
        normalize_key("speech_encoder.after_norm.weight", &layout).name,
        "encoder.after_norm.weight"
    );
}

fn info(shape: &[usize], stride: &[usize]) -> PtTensorInfo {
    PtTensorInfo {
        dtype: StoredDType::F32,
        shape: shape.to_vec(),
        stride: stride.to_vec(),
        offset: 0,
        storage: "0".into(),
    }
}

#[test]
fn contiguity() {
    assert!(info(&[2, 3], &[3, 1]).is_contiguous());
    assert!(info(&[], &[]).is_contiguous());
    // Size-1 dims may have any stride.
    assert!(info(&[1, 3], &[99, 1]).is_contiguous());
    assert!(info(&[2, 1, 3], &[3, 7, 1]).is_contiguous());
    assert!(!info(&[3, 2], &[1, 3]).is_contiguous());
    assert!(!info(&[2, 2], &[4, 1]).is_contiguous());
    // Empty tensors read nothing.
    assert!(info(&[0, 3], &[1, 9]).is_contiguous());
}
