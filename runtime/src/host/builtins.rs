//! The built-in validator types: Sahara's eight, compiled to components by
//! `build.rs` and embedded here. They are declared with explicit grants,
//! exactly as a third-party type would be, and load through the same path.

use super::grants::{Grant, Grants, Limits};
use super::{ComponentSource, TypeDeclaration};

macro_rules! component {
    ($file:literal) => {
        include_bytes!(concat!(env!("KILN_COMPONENT_DIR"), "/", $file))
    };
}

/// Names of the built-in types, in the order the guide introduces them.
pub const BUILTIN_NAMES: [&str; 8] = [
    "package",
    "script",
    "copy_script",
    "os_case",
    "argument_case",
    "argument_set",
    "any",
    "all",
];

/// The declarations of every built-in type.
pub fn builtin_declarations() -> Vec<TypeDeclaration> {
    use Grant::*;
    let table: [(&str, &'static [u8], &[Grant]); 8] = [
        ("package", component!("kiln_builtin_package.wasm"), &[Exec]),
        (
            "script",
            component!("kiln_builtin_script.wasm"),
            &[Exec, WriteFile, ReadResource, SetArgument],
        ),
        (
            "copy_script",
            component!("kiln_builtin_copy_script.wasm"),
            &[WriteFile, ReadFile, ReadResource],
        ),
        (
            "os_case",
            component!("kiln_builtin_os_case.wasm"),
            &[Nested],
        ),
        (
            "argument_case",
            component!("kiln_builtin_argument_case.wasm"),
            &[Nested],
        ),
        (
            "argument_set",
            component!("kiln_builtin_argument_set.wasm"),
            &[SetArgument],
        ),
        ("any", component!("kiln_builtin_any.wasm"), &[Nested]),
        ("all", component!("kiln_builtin_all.wasm"), &[Nested]),
    ];
    table
        .into_iter()
        .map(|(name, bytes, grants)| TypeDeclaration {
            name: name.to_string(),
            source: ComponentSource::Builtin(bytes),
            sha256: None,
            grants: Grants::new(grants.iter().copied()),
            limits: Limits::BUILTIN,
            overrides_builtin: false,
        })
        .collect()
}
