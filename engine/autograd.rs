//! Reverse-mode autograd on a define-by-run tape.
//!
//! Every op whose inputs track gradients records a [`Node`]: the op's backward rule and its input
//! tensors. [`Tensor::backward`] walks the nodes reachable from a scalar loss in reverse
//! topological order and returns the gradients of the trainable leaves ([`Tensor::variable`]),
//! keyed by tensor id. Gradients are computed with ordinary tensor ops (inside `no_grad`), so they
//! run on whatever device the forward ran on. Frozen tensors never track gradients, so no
//! gradient buffer is ever allocated for them, and a backward rule is told which inputs need one.

use super::error::{Error, Result};
use super::tensor::{Tensor, TensorId};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True unless inside a [`no_grad`] scope on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording any op on the tape (inference, optimizer updates).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Disables recording on this thread until dropped; restores the previous state.
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    /// Start a no-grad scope.
    pub fn new() -> Self {
        let prev = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { prev }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// The backward rule of one op.
pub trait BackwardOp: Send + Sync {
    /// Op name (for errors and debugging).
    fn name(&self) -> &'static str;
    /// Given the recorded `inputs`, the op's output `out` and `grad` = ∂L/∂out, return ∂L/∂input
    /// for every input with `needs[i]` set (others may be `None`). Each gradient must have its
    /// input's shape. Runs inside `no_grad`.
    fn backward(
        &self,
        inputs: &[Tensor],
        out: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>>;
}

/// The backward rule of a one-input op that is linear in its input (views, copies, casts,
/// im2col/col2im): the input gradient is the op's adjoint applied to the output gradient.
struct Adjoint<F> {
    name: &'static str,
    apply: F,
}

impl<F> BackwardOp for Adjoint<F>
where
    F: Fn(&Tensor) -> Result<Tensor> + Send + Sync,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(
        &self,
        _: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some((self.apply)(g)?)])
    }
}

/// A boxed backward rule for a one-input linear op: `apply` maps ∂L/∂out to ∂L/∂input.
pub fn adjoint<F>(name: &'static str, apply: F) -> Box<dyn BackwardOp>
where
    F: Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
{
    Box::new(Adjoint { name, apply })
}

/// A recorded op application.
pub struct Node {
    pub(crate) op: Box<dyn BackwardOp>,
    pub(crate) inputs: Vec<Tensor>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({}, {} inputs)", self.op.name(), self.inputs.len())
    }
}

/// True when an op over `inputs` must be recorded.
pub fn should_record(inputs: &[&Tensor]) -> bool {
    is_grad_enabled() && inputs.iter().any(|t| t.tracks_grad())
}

/// Gradients of the trainable leaves, keyed by tensor id.
#[derive(Debug, Default)]
pub struct Gradients {
    map: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// ∂L/∂t for a trainable tensor, if the loss depends on it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }
    /// Remove and return the gradient of `t`.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.id())
    }
    /// Set (or replace) the gradient of `t`, e.g. after clipping.
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        self.map.insert(t.id(), grad);
    }
    /// Number of leaves with a gradient.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when no leaf received a gradient.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Iterate over (id, gradient).
    pub fn iter(&self) -> impl Iterator<Item = (&TensorId, &Tensor)> {
        self.map.iter()
    }
}

/// Tensors reachable from `root` through recorded nodes, each after all of its consumers.
fn reverse_topological(root: &Tensor) -> Vec<Tensor> {
    // Iterative DFS (post-order) so deep graphs (long training unrolls) cannot overflow the stack.
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = t.node() {
            for input in &node.inputs {
                if input.tracks_grad() && !seen.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order.reverse();
    order
}

pub(crate) fn backward(loss: &Tensor) -> Result<Gradients> {
    if loss.elem_count() != 1 {
        return Err(Error::Autograd(format!(
            "backward needs a scalar loss, got shape {:?}",
            loss.shape()
        )));
    }
    if !loss.tracks_grad() {
        return Err(Error::Autograd(
            "the loss does not depend on any trainable tensor".into(),
        ));
    }
    let _guard = NoGradGuard::new();
    let mut pending: HashMap<TensorId, Tensor> = HashMap::new();
    pending.insert(loss.id(), loss.ones_like()?);
    let mut leaves = Gradients::default();
    for t in reverse_topological(loss) {
        let Some(grad) = pending.remove(&t.id()) else {
            continue;
        };
        let Some(node) = t.node() else {
            if t.is_variable() {
                leaves.map.insert(t.id(), grad);
            }
            continue;
        };
        let needs: Vec<bool> = node.inputs.iter().map(|i| i.tracks_grad()).collect();
        let input_grads = node.op.backward(&node.inputs, &t, &grad, &needs)?;
        for ((input, g), need) in node.inputs.iter().zip(input_grads).zip(needs) {
            let Some(g) = g.filter(|_| need) else {
                continue;
            };
            if g.shape() != input.shape() {
                return Err(Error::Autograd(format!(
                    "backward of {} produced a gradient of shape {:?} for an input of shape {:?}",
                    node.op.name(),
                    g.shape(),
                    input.shape()
                )));
            }
            let acc = match pending.remove(&input.id()) {
                Some(prev) => prev.add(&g)?,
                None => g,
            };
            pending.insert(input.id(), acc);
        }
    }
    Ok(leaves)
}
