"""Benchmarks: generate a reference ledger at scale and measure what detection costs.

Run ``python -m bench.run --scale 10m`` (see docs/benchmarks.md).
"""
