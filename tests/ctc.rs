//! The CTC loss (engine/ops/loss.rs, engine/cpu/ctc.rs) against PyTorch's
//! `torch.nn.functional.ctc_loss` goldens from scripts/goldens/make_ctc_golden.py.
//!
//! Tolerances: the loss within 1e-4 relative (f32 log-probabilities into an f64 lattice; the
//! golden is f64 throughout), the gradient with respect to the logits (through `log_softmax`)
//! within 2e-5 absolute (its entries are probabilities in [−1, 1]).
mod golden;

use osum::engine::{device_named, Tensor};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let text = include_str!("../scripts/goldens/ctc_golden.json");
    let v: Value = serde_json::from_str(text).expect("golden JSON");
    v["cases"].as_array().expect("cases").clone()
}

#[test]
fn ctc_loss_and_logit_gradients_match_pytorch_goldens() {
    let dev = device_named("cpu").unwrap();
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let (t, c) = (
            case["frames"].as_u64().unwrap() as usize,
            case["classes"].as_u64().unwrap() as usize,
        );
        let logits = Tensor::from_vec(golden::floats(&case["logits"]), &[t, c], &dev)
            .unwrap()
            .variable();
        let labels = golden::ids(&case["labels"]);
        let n = labels.len();
        let labels = Tensor::from_vec(labels, &[n], &dev).unwrap();
        let blank = case["blank"].as_u64().unwrap() as usize;
        let loss = logits
            .log_softmax()
            .unwrap()
            .ctc_loss(&labels, blank)
            .unwrap();
        let got = loss.to_scalar_f32().unwrap() as f64;
        let want = case["loss"].as_f64().unwrap();
        assert!(
            ((got - want) / want).abs() < 1e-4,
            "{name}: loss {got} vs PyTorch {want}"
        );
        let grads = loss.backward().unwrap();
        let g = grads.get(&logits).expect("a gradient for the logits");
        let diff = golden::max_abs_diff(
            &g.to_vec::<f32>().unwrap(),
            &golden::floats(&case["grad_logits"]),
        );
        assert!(diff < 2e-5, "{name}: gradient differs by {diff}");
    }
}

#[test]
fn ctc_refuses_sequences_too_short_for_their_labels() {
    let dev = device_named("cpu").unwrap();
    let lp = Tensor::zeros(&[3, 4], osum::engine::DType::F32, &dev).unwrap();
    // `2 2 3` needs 4 frames (a blank between the two 2s).
    let labels = Tensor::from_vec(vec![2u32, 2, 3], &[3], &dev).unwrap();
    let e = lp.ctc_loss(&labels, 0).unwrap_err().to_string();
    assert!(e.contains("3 frames cannot emit 3 labels"), "{e}");
    assert!(e.contains("at least 4"), "{e}");
}

#[test]
fn ctc_refuses_a_label_equal_to_blank() {
    let dev = device_named("cpu").unwrap();
    let lp = Tensor::zeros(&[5, 4], osum::engine::DType::F32, &dev).unwrap();
    let labels = Tensor::from_vec(vec![1u32, 0], &[2], &dev).unwrap();
    assert!(lp.ctc_loss(&labels, 0).is_err());
}

#[test]
fn ctc_is_a_named_unsupported_op_on_ascend_sim() {
    let dev = device_named("ascend-sim").unwrap();
    let lp = Tensor::zeros(&[5, 4], osum::engine::DType::F32, &dev).unwrap();
    let labels = Tensor::from_vec(vec![1u32, 2], &[2], &dev).unwrap();
    let e = lp.ctc_loss(&labels, 0).unwrap_err().to_string();
    assert!(e.contains("ctc_loss") && e.contains("ascend-sim"), "{e}");
}
