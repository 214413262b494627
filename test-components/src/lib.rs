//! The paths of the validator components that only kiln's tests and
//! benchmarks use: the examples and the hostile fixtures, built for
//! `wasm32-wasip2` by this crate's `build.rs`. kiln takes this crate as a
//! dev-dependency, so `cargo build --release` never compiles them; the
//! built-in types are embedded by `runtime/build.rs` instead.
//!
//! Each component is a constant named after its file (`KILN_HOSTILE_ATTACKS`
//! for `kiln_hostile_attacks.wasm`); [`component`] finds one by that stem.

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The path of the component built to `<stem>.wasm`, or `None` when no
/// example or hostile crate builds it.
pub fn component(stem: &str) -> Option<&'static Path> {
    ALL.iter()
        .find(|(name, _)| *name == stem)
        .map(|(_, path)| Path::new(*path))
}
