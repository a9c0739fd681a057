"""Training: its settings, the two-phase run, losses, callbacks, checkpoints and the dtype policy."""
