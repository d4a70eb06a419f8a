//! No library code: the end-to-end tests live in `tests/`, the benchmarks in `benches/`.
