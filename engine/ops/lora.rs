//! (filled in by the op-family work for lora)
