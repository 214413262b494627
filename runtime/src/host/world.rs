//! The `kiln:validator` contract as this kiln serves it, and the one place
//! where contract versions are told apart: the wasmtime bindings generated
//! from `wit/validator.wit` (the current contract), which versions a
//! component may have been built against, and the refusal that names both
//! versions when it is not one of them.
//!
//! The contracts live in `wit/`: `validator.wit` is the current one
//! ([`WIT_VERSION`]) and `since_vX.Y.Z/` holds each earlier release frozen
//! as it shipped, in the manner of Zed's `extension_api/wit/since_v*`.
//! Every 0.1.x release only added to 0.1.0, and the component model links a
//! component's imports and exports by semver within one 0.x line, so a 0.1.0
//! component runs on the current bindings unchanged ([`ContractLine::V0_1`]).
//! A breaking 0.2 will get its own line: the 0.1 bindings then move to a file
//! beside this one (`world/since_v0_1.rs`, generated from
//! `wit/since_v0.1.2/`) holding an adapter that serves 0.1 components on top
//! of the 0.2 host, as Zed's `wasm_host/wit/since_v*.rs` do, and
//! [`ContractLine::of`] is where a component is sent to one or the other.

use semver::Version;
use wasmtime::component::Component;
use wasmtime::Engine;

use super::LoadError;

/// Generated bindings for the current `kiln:validator` world.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "validator-type",
        imports: { default: trappable },
    });
}

/// The version of the `kiln:validator` WIT package this kiln provides.
pub const WIT_VERSION: &str = "0.1.2";
/// The interface every validator component exports (unversioned name).
pub(crate) const EXPORT_INTERFACE: &str = "kiln:validator/validator";

/// The lines of the contract this kiln serves, one per set of bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContractLine {
    /// 0.1.0 up to [`WIT_VERSION`]: the current bindings.
    V0_1,
}

impl ContractLine {
    /// The line that serves a component built against `version`, if any.
    fn of(version: &str) -> Option<ContractLine> {
        versions_compatible(version, WIT_VERSION).then_some(ContractLine::V0_1)
    }
}

/// Finds the version of `kiln:validator/validator` the component exports and
/// the line that serves it, or refuses the component naming both versions.
pub(crate) fn check_world_version(
    name: &str,
    engine: &Engine,
    component: &Component,
) -> Result<ContractLine, LoadError> {
    let exported: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(n, _)| n.to_string())
        .collect();
    let Some(version) = exported.iter().find_map(|n| {
        n.strip_prefix(EXPORT_INTERFACE)
            .and_then(|v| v.strip_prefix('@'))
    }) else {
        return Err(LoadError::Link {
            name: name.to_string(),
            reason: format!(
                "it exports {} but not {EXPORT_INTERFACE}; is it built for the kiln:validator/validator-type world?",
                if exported.is_empty() { "nothing".to_string() } else { exported.join(", ") }
            ),
        });
    };
    if let Some(line) = ContractLine::of(version) {
        return Ok(line);
    }
    let hint = if newer(version, WIT_VERSION) {
        "; upgrade kiln to run it"
    } else {
        "; rebuild it against this kiln's wit/"
    };
    Err(LoadError::IncompatibleVersion {
        name: name.to_string(),
        found: version.to_string(),
        provided: WIT_VERSION,
        hint,
    })
}

/// A version's release numbers; pre-release and build tags do not change
/// which contract a component was built against.
fn release(text: &str) -> Option<(u64, u64, u64)> {
    let version = Version::parse(text).ok()?;
    Some((version.major, version.minor, version.patch))
}

/// Semver compatibility as the component model applies it: same major (for
/// 0.x, same minor), and not newer than what the host provides.
pub fn versions_compatible(component: &str, host: &str) -> bool {
    let (Some(c), Some(h)) = (release(component), release(host)) else {
        return false;
    };
    let same_line = if c.0 == 0 && h.0 == 0 {
        c.1 == h.1
    } else {
        c.0 == h.0
    };
    same_line && c <= h
}

fn newer(component: &str, host: &str) -> bool {
    matches!((release(component), release(host)), (Some(c), Some(h)) if c > h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_release_and_build_tags_do_not_change_the_line() {
        assert!(versions_compatible("0.1.0-rc.1", "0.1.2"));
        assert!(versions_compatible("0.1.1+build.5", "0.1.2"));
        assert!(!versions_compatible("0.1", "0.1.2"));
        assert_eq!(ContractLine::of("0.1.0"), Some(ContractLine::V0_1));
        assert_eq!(ContractLine::of(WIT_VERSION), Some(ContractLine::V0_1));
        assert_eq!(ContractLine::of("0.2.0"), None);
    }

    #[test]
    fn the_current_contract_file_declares_wit_version() {
        let wit = include_str!("../../../wit/validator.wit");
        assert!(
            wit.contains(&format!("package kiln:validator@{WIT_VERSION};")),
            "wit/validator.wit and WIT_VERSION disagree"
        );
    }

    #[test]
    fn each_frozen_contract_is_the_version_its_directory_names() {
        let frozen = include_str!("../../../wit/since_v0.1.0/validator.wit");
        assert!(frozen.contains("package kiln:validator@0.1.0;"));
        assert!(versions_compatible("0.1.0", WIT_VERSION));
    }
}
