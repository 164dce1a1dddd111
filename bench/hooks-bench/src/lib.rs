//! Benchmarks only: see `benches/dispatch.rs` and `bench/dispatch.py`.
