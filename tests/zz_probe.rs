use osum::engine::{device_named, no_grad, Tensor};
use osum::model::osum::OsumModel;
use osum::model::preset::Preset;
use osum::train::batch::batch_loss;
use osum::train::data::Manifest;
use osum::train::stages::{examples, Stage};
use std::path::Path;

#[test]
fn probe() {
    for dn in ["cpu-bf16", "cpu"] {
        let dev = device_named(dn).unwrap();
        let p = Preset::find("osum-tiny").unwrap();
        let m = OsumModel::open(p, Some(Path::new("/tmp/tr/l1-snap")), &dev).unwrap();
        let man = Manifest::load(Path::new("/tmp/tr/asr8.jsonl")).unwrap();
        let exs = examples(Stage::TagAlignment, &man, &m).unwrap();
        let ex = &exs[0];
        let s = osum::model::audio::load(ex.audio.as_ref().unwrap(), None).unwrap();
        let enc = m.encoder_features(&s).unwrap();
        let sp = no_grad(|| m.speech_from_features(&enc)).unwrap();
        let leaf = sp.owned_variable().unwrap();
        let bl = batch_loss(&m, &[ex], &[Some(leaf.clone())]).unwrap();
        let l0 = bl.loss.to_scalar_f32().unwrap();
        let g = bl.loss.backward().unwrap();
        let gs = g
            .get(&leaf)
            .expect("grad for speech")
            .to_vec::<f32>()
            .unwrap();
        let d = 576;
        let rows = gs.len() / d;
        let norms: Vec<f32> = (0..rows)
            .map(|r| {
                gs[r * d..(r + 1) * d]
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let gn = gs.iter().map(|x| x * x).sum::<f32>().sqrt();
        println!(
            "{dn}: loss {l0} speech rows {rows} grad norm {gn:.3e}; row norms {:?}",
            &norms
        );
        // Finite difference along the gradient.
        let v = sp.to_vec::<f32>().unwrap();
        let eps = 1e-2f32;
        let shifted = |sgn: f32| {
            let w: Vec<f32> = v
                .iter()
                .zip(&gs)
                .map(|(a, b)| a + sgn * eps * b / gn)
                .collect();
            let t = Tensor::from_vec(w, sp.shape(), &dev).unwrap();
            no_grad(|| batch_loss(&m, &[ex], &[Some(t)]))
                .unwrap()
                .loss
                .to_scalar_f32()
                .unwrap()
        };
        let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps);
        println!("{dn}: directional FD {fd:.4e} vs |g| {gn:.4e}");
        // And the gradient wrt a text row for scale: embed the instruction rows as a leaf? Use
        // the LoRA-free comparison: how much does zeroing all speech rows change the loss?
        let z = Tensor::from_vec(vec![0f32; v.len()], sp.shape(), &dev).unwrap();
        let lz = no_grad(|| batch_loss(&m, &[ex], &[Some(z)]))
            .unwrap()
            .loss
            .to_scalar_f32()
            .unwrap();
        println!("{dn}: loss with zeroed speech {lz} vs {l0}");
    }
}
