"""Benchmarks that ship with the package: ``embedloop bench quality`` runs :mod:`.quality`.

The performance benchmark compares the product with raw libraries and stays a script
(``bench/performance.py``); the quality benchmark is a product feature — an operator can
measure on their own BEIR-format data whether feedback makes their search better.
"""
