"""Serving-side search helpers (the lead's search package; exploration.py is self-contained)."""
