//! The `os_case` validator type: runs the block of the first case whose key
//! is the target's distro or its family; when none matches, nothing runs.
//!
//! Spec: a list of one-key maps, distro or family → list of validators (a
//! list, so order is kept).

use kiln_validator_sdk::{
    export_validator, host, kind_of, pointer_index, pointer_key, single_entry, spec_error,
    BlockShape, Guest, NestedBlock, Plan, SpecError, Value,
};

struct OsCase;

impl Guest for OsCase {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let cases = cases(&kiln_validator_sdk::parse_spec(&spec)?)?;
        let nested = cases
            .iter()
            .map(|(_, pointer)| NestedBlock {
                pointer: pointer.clone(),
                shape: BlockShape::Sequence,
            })
            .collect();
        let keys: Vec<&str> = cases.iter().map(|(k, _)| k.as_str()).collect();
        Ok(Plan {
            nested,
            resources: Vec::new(),
            summary: format!("by distro: {}", keys.join(", ")),
        })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let spec = kiln_validator_sdk::parse_run_spec(&spec)?;
        let cases = cases(&spec)?;
        let distro = host::distro();
        let family = host::family_of(&distro);
        let matching = cases
            .iter()
            .position(|(key, _)| *key == distro || Some(key) == family.as_ref());
        match matching {
            Some(index) => host::run_nested(index as u32, test_only),
            None => {
                kiln_validator_sdk::info(&format!(
                    "os_case: no case for distro {distro}; nothing to do"
                ));
                Ok(())
            }
        }
    }
}

/// (distro key, pointer to its validator list), in order.
fn cases(spec: &Value) -> Result<Vec<(String, String)>, SpecError> {
    let items = spec.as_array().ok_or_else(|| {
        spec_error(
            "",
            format!(
                "os_case must be a list of `distro: [validators]` entries, found {}",
                kind_of(spec)
            ),
        )
    })?;
    if items.is_empty() {
        return Err(spec_error("", "os_case has no cases"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let pointer = pointer_index("", i);
            let (key, _) = single_entry(item, &pointer, "each os_case entry")?;
            Ok((key.clone(), pointer_key(&pointer, key)))
        })
        .collect()
}

export_validator!(OsCase);
