#![no_main]

use std::sync::OnceLock;

#[path = "../harness.rs"]
mod harness;

static HARNESS: OnceLock<harness::Manifests> = OnceLock::new();

// Compiling the built-ins takes seconds: done once, before libFuzzer's
// per-input timeout starts counting.
libfuzzer_sys::fuzz_target!(
    init: {
        HARNESS.get_or_init(harness::Manifests::new);
    },
    |data: &[u8]| HARNESS.get().expect("initialized").load(data)
);
