"""Corpora: MELD (CSV + raw clips), EmoDB, and generated speech for tests and benchmarks."""
