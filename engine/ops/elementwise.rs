//! Elementwise ops: unary functions, broadcasting binary arithmetic, comparisons and `where`.
//! Comparisons return u32 0/1 masks; integer outputs carry no gradient by definition (no float
//! value depends on them differentiably), so they are constants rather than a cut in the graph.

use crate::engine::autograd::BackwardOp;
use crate::engine::device::{BinaryOp, UnaryOp};
use crate::engine::dtype::DType;
use crate::engine::error::{Error, Result};
use crate::engine::layout::broadcast_shape;
use crate::engine::tensor::Tensor;

impl Tensor {
    /// Apply a unary function elementwise.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: op.name(),
                dtype: self.dtype(),
                device: self.device().name(),
            });
        }
        let buf = {
            let r = self.read();
            self.device().unary(op, r.view())?
        };
        match op {
            // Derivative helpers exist for backward rules only; they are not differentiated.
            UnaryOp::Step | UnaryOp::GeluDeriv | UnaryOp::SiluDeriv => {
                Tensor::from_op_no_backward(buf, self.shape(), self.device(), &[self], op.name())
            }
            _ => Tensor::from_op(buf, self.shape(), self.device(), &[self], || {
                Box::new(UnaryBackward(op))
            }),
        }
    }

    /// −x
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// eˣ
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// ln x
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// √x
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// 1/x
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    /// |x|
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// x²
    pub fn sqr(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqr)
    }
    /// tanh x
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// max(x, 0)
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// GELU, exact erf form.
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Gelu)
    }
    /// SiLU / swish.
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Silu)
    }
    /// sin x
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    /// cos x
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    /// x·mul + add
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    /// x·s
    pub fn scale(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    /// xᵉ
    pub fn powf(&self, e: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Powf(e))
    }

    /// Apply a binary op with NumPy broadcasting. Arithmetic needs equal float dtypes;
    /// comparisons accept any equal dtypes and return a u32 mask.
    pub fn binary(&self, op: BinaryOp, rhs: &Tensor) -> Result<Tensor> {
        let name = op.name();
        self.check_same_device(name, rhs)?;
        self.check_same_dtype(name, rhs)?;
        if !op.is_comparison() && !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: self.dtype(),
                device: self.device().name(),
            });
        }
        let shape = broadcast_shape(name, self.shape(), rhs.shape())?;
        let ll = self.layout().broadcast_as(name, &shape)?;
        let rl = rhs.layout().broadcast_as(name, &shape)?;
        let buf = {
            let (a, b) = (self.read(), rhs.read());
            let (av, bv) = (a.view(), b.view());
            self.device().binary(
                op,
                crate::engine::View::new(av.buf, &ll),
                crate::engine::View::new(bv.buf, &rl),
            )?
        };
        if op.is_comparison() {
            return Tensor::from_buffer(buf, &shape, self.device());
        }
        Tensor::from_op(buf, &shape, self.device(), &[self, rhs], || {
            Box::new(BinaryBackward(op))
        })
    }

    /// a + b (broadcasting)
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, rhs)
    }
    /// a − b (broadcasting)
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, rhs)
    }
    /// a · b (broadcasting)
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, rhs)
    }
    /// a / b (broadcasting)
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, rhs)
    }
    /// max(a, b) (broadcasting; ties send the gradient to `a`)
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Maximum, rhs)
    }
    /// min(a, b) (broadcasting; ties send the gradient to `a`)
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Minimum, rhs)
    }
    /// a == b as a u32 mask
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Eq, rhs)
    }
    /// a != b as a u32 mask
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Ne, rhs)
    }
    /// a < b as a u32 mask
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Lt, rhs)
    }
    /// a <= b as a u32 mask
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Le, rhs)
    }
    /// a > b as a u32 mask
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Gt, rhs)
    }
    /// a >= b as a u32 mask
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Ge, rhs)
    }

    /// `cond ? on_true : on_false` with broadcasting; `cond` is a u32 mask (`self`).
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_cond";
        self.check_dtype(OP, DType::U32)?;
        self.check_same_device(OP, on_true)?;
        on_true.check_same_device(OP, on_false)?;
        on_true.check_same_dtype(OP, on_false)?;
        let shape = broadcast_shape(OP, self.shape(), on_true.shape())?;
        let shape = broadcast_shape(OP, &shape, on_false.shape())?;
        let (cl, tl, fl) = (
            self.layout().broadcast_as(OP, &shape)?,
            on_true.layout().broadcast_as(OP, &shape)?,
            on_false.layout().broadcast_as(OP, &shape)?,
        );
        let buf = {
            let (c, t, f) = (self.read(), on_true.read(), on_false.read());
            self.device().where_cond(
                crate::engine::View::new(c.view().buf, &cl),
                crate::engine::View::new(t.view().buf, &tl),
                crate::engine::View::new(f.view().buf, &fl),
            )?
        };
        Tensor::from_op(
            buf,
            &shape,
            self.device(),
            &[self, on_true, on_false],
            || Box::new(WhereBackward),
        )
    }
}

struct UnaryBackward(UnaryOp);
impl BackwardOp for UnaryBackward {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        y: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let dx = match self.0 {
            UnaryOp::Neg => g.neg()?,
            UnaryOp::Exp => g.mul(y)?,
            UnaryOp::Log => g.div(x)?,
            UnaryOp::Sqrt => g.div(y)?.scale(0.5)?,
            UnaryOp::Recip => g.mul(&y.sqr()?)?.neg()?,
            UnaryOp::Abs => g.mul(
                &x.unary(UnaryOp::Step)?
                    .sub(&x.neg()?.unary(UnaryOp::Step)?)?,
            )?,
            UnaryOp::Sqr => g.mul(x)?.scale(2.0)?,
            UnaryOp::Tanh => g.mul(&y.sqr()?.affine(-1.0, 1.0)?)?,
            UnaryOp::Sigmoid => g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?)?,
            UnaryOp::Relu => g.mul(&x.unary(UnaryOp::Step)?)?,
            UnaryOp::Gelu => g.mul(&x.unary(UnaryOp::GeluDeriv)?)?,
            UnaryOp::Silu => g.mul(&x.unary(UnaryOp::SiluDeriv)?)?,
            UnaryOp::Sin => g.mul(&x.cos()?)?,
            UnaryOp::Cos => g.mul(&x.sin()?)?.neg()?,
            UnaryOp::Affine { mul, .. } => g.scale(mul)?,
            UnaryOp::Powf(e) => g.mul(&x.powf(e - 1.0)?)?.scale(e)?,
            UnaryOp::Step | UnaryOp::GeluDeriv | UnaryOp::SiluDeriv => {
                return Err(Error::NoBackward { op: self.0.name() })
            }
        };
        Ok(vec![Some(dx)])
    }
}

struct BinaryBackward(BinaryOp);
impl BackwardOp for BinaryBackward {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        // Each side's gradient is built only when asked for: one side is often a constant (a
        // dropout mask, an attention mask), and its gradient is a full-size product.
        let zero = || Tensor::zeros(&[], g.dtype(), g.device());
        let grad_a = || -> Result<Tensor> {
            match self.0 {
                BinaryOp::Add | BinaryOp::Sub => Ok(g.clone()),
                BinaryOp::Mul => g.mul(b),
                BinaryOp::Div => g.div(b),
                BinaryOp::Maximum => a.ge(b)?.where_cond(g, &zero()?),
                BinaryOp::Minimum => a.le(b)?.where_cond(g, &zero()?),
                _ => Err(Error::NoBackward { op: self.0.name() }),
            }
        };
        let grad_b = || -> Result<Tensor> {
            match self.0 {
                BinaryOp::Add => Ok(g.clone()),
                BinaryOp::Sub => g.neg(),
                BinaryOp::Mul => g.mul(a),
                BinaryOp::Div => g.mul(a)?.div(&b.sqr()?)?.neg(),
                BinaryOp::Maximum => a.ge(b)?.where_cond(&zero()?, g),
                BinaryOp::Minimum => a.le(b)?.where_cond(&zero()?, g),
                _ => Err(Error::NoBackward { op: self.0.name() }),
            }
        };
        Ok(vec![
            needs[0]
                .then(|| grad_a()?.sum_to_shape(a.shape()))
                .transpose()?,
            needs[1]
                .then(|| grad_b()?.sum_to_shape(b.shape()))
                .transpose()?,
        ])
    }
}

struct WhereBackward;
impl BackwardOp for WhereBackward {
    fn name(&self) -> &'static str {
        "where_cond"
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (c, t, f) = (&inputs[0], &inputs[1], &inputs[2]);
        let zero = Tensor::zeros(&[], g.dtype(), g.device())?;
        Ok(vec![
            None,
            needs[1]
                .then(|| c.where_cond(g, &zero)?.sum_to_shape(t.shape()))
                .transpose()?,
            needs[2]
                .then(|| c.where_cond(&zero, g)?.sum_to_shape(f.shape()))
                .transpose()?,
        ])
    }
}
