"""Benchmarks for offload (not part of the installed package); see benchmarks/README.md."""
