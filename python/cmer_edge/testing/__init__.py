"""Development tooling, not the library: generated speech (espeak-ng), scenes with known speech
spans, a synthetic MELD.Raw corpus. The top layer: it may import anything in the package and is
imported only by tests and benchmarks (docs/architecture.md)."""
