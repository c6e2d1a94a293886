//! Shared helpers of the benchmark binaries (`src/bin/bench-*.rs`).
