"""Benchmarks: programs that print tables (``python -m cmer_edge.bench <subcommand>``), not tests."""
