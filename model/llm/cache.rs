//! The key/value cache of an [`Llm`](super::Llm): per layer, keys and values `[B, kv_heads,
//! capacity, head_dim]` (f32) allocated once and filled in place.
//!
//! The engine's `KvCache` has the same layout but keeps its buffers private, so it cannot be
//! copied or reordered; beam search needs both (each step keeps the beams that survived, in a
//! new order), hence this small cache of our own built on `write_slice`/`index_select`.

use super::config::LlmConfig;
use super::{LlmError, Result};
use crate::engine::{DType, Device, Tensor};
use std::sync::Arc;

/// Cached keys and values of every layer, and how many positions are filled.
#[derive(Debug)]
pub struct LlmCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl LlmCache {
    /// An empty cache for `batch` sequences of up to `capacity` positions (at most the model's
    /// `max_positions`). Needs `layers · 2 · batch · kv_heads · capacity · head_dim · 4` bytes.
    pub fn new(
        config: &LlmConfig,
        batch: usize,
        capacity: usize,
        device: &Arc<dyn Device>,
    ) -> Result<LlmCache> {
        if batch == 0 || capacity == 0 || capacity > config.max_positions {
            return Err(LlmError::Invalid(format!(
                "KV cache of batch {batch} × {capacity} positions: both must be positive and \
                 the capacity at most max_positions {}",
                config.max_positions
            )));
        }
        let shape = [batch, config.kv_heads, capacity, config.head_dim];
        let layers = (0..config.layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(&shape, DType::F32, device)?,
                    Tensor::zeros(&shape, DType::F32, device)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(LlmCache { layers, len: 0 })
    }

    /// Positions filled so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward pass (or after [`LlmCache::reset`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.shape()[2])
    }

    /// Sequences in the batch.
    pub fn batch(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.shape()[0])
    }

    /// Forget every position (buffers are kept).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Error unless `t` more positions of a batch of `batch` fit, before any layer writes.
    pub(crate) fn check_room(&self, batch: usize, t: usize) -> Result<()> {
        if batch != self.batch() {
            return Err(LlmError::Invalid(format!(
                "input batch {batch} does not match the KV cache batch {}",
                self.batch()
            )));
        }
        if self.len.checked_add(t).is_none_or(|e| e > self.capacity()) {
            return Err(LlmError::Invalid(format!(
                "{t} new positions do not fit the KV cache: {} of {} used",
                self.len,
                self.capacity()
            )));
        }
        Ok(())
    }

    /// Write the new keys/values `[B, kv_heads, T, D]` of `layer` at positions `len..len+T` and
    /// return views of positions `0..len+T`. The length advances only in [`LlmCache::advance`],
    /// once every layer has written.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let Some((kc, vc)) = self.layers.get(layer) else {
            return Err(LlmError::Invalid(format!(
                "layer {layer} is outside the KV cache's {} layers",
                self.layers.len()
            )));
        };
        let end = self.len + k.shape()[2];
        kc.write_slice(2, self.len, k)?;
        vc.write_slice(2, self.len, v)?;
        Ok((kc.narrow(2, 0, end)?, vc.narrow(2, 0, end)?))
    }

    /// Count `t` new positions as filled (after every layer has written them).
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Keep, for each new batch row `i`, the filled positions of old row `rows[i]` (beam search:
    /// surviving beams, possibly repeated). `rows.len()` must equal the batch.
    pub fn reorder(&mut self, rows: &[u32]) -> Result<()> {
        let batch = self.batch();
        if rows.len() != batch || rows.iter().any(|&r| r as usize >= batch) {
            return Err(LlmError::Invalid(format!(
                "reorder rows {rows:?} must be {batch} indices below {batch}"
            )));
        }
        if self.len == 0 || rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        let Some((k0, _)) = self.layers.first() else {
            return Ok(());
        };
        let ids = Tensor::from_vec(rows.to_vec(), &[batch], k0.device())?;
        for (k, v) in &self.layers {
            for t in [k, v] {
                // Only the filled prefix is gathered (a fresh tensor), then written back.
                let picked = t.narrow(2, 0, self.len)?.index_select(&ids, 0)?;
                t.write_slice(2, 0, &picked)?;
            }
        }
        Ok(())
    }

    /// A deep copy (new buffers with the same contents and length).
    pub fn try_clone(&self) -> Result<LlmCache> {
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((k.copy()?, v.copy()?)))
            .collect::<Result<_>>()?;
        Ok(LlmCache {
            layers,
            len: self.len,
        })
    }
}

impl LlmCache {
    /// A cache of batch `n` and `capacity` positions whose every row holds a copy of this
    /// batch-1 cache's filled positions (beam search runs the prompt once, then fans out).
    pub fn repeat_batch(&self, n: usize, capacity: usize) -> Result<LlmCache> {
        if self.batch() != 1 || capacity < self.len || n == 0 {
            return Err(LlmError::Invalid(format!(
                "repeat_batch needs a batch-1 cache, n > 0 and capacity ≥ {} (batch {}, n {n}, \
                 capacity {capacity})",
                self.len,
                self.batch()
            )));
        }
        let fan_out = |t: &Tensor| -> Result<Tensor> {
            let s = t.shape();
            let dst = Tensor::zeros(&[n, s[1], capacity, s[3]], DType::F32, t.device())?;
            if self.len > 0 {
                let filled = t.narrow(2, 0, self.len)?;
                for i in 0..n {
                    // A view of row i: the write lands in `dst`'s storage.
                    dst.narrow(0, i, 1)?.write_slice(2, 0, &filled)?;
                }
            }
            Ok(dst)
        };
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((fan_out(k)?, fan_out(v)?)))
            .collect::<Result<_>>()?;
        Ok(LlmCache {
            layers,
            len: self.len,
        })
    }
}
