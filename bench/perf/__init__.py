"""``bench/performance.py`` split by phase: one module per measured figure, shared helpers in ``common``."""
