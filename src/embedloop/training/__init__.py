"""From feedback to a trained candidate: examples, split, losses, the fine-tuner, one cycle."""
