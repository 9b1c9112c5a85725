//! (filled in by the op-family work for conv)
