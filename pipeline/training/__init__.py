"""The debiased in-batch loss, online distillation, and the training loop."""
