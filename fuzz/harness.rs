//! What the fuzz targets do with their input, shared with the main
//! workspace's `tests/it/fuzz_corpus.rs` (which includes this file), so the
//! saved corpus replays through exactly these calls under `cargo test` on
//! stable. It uses nothing but kiln's public API and the standard library.
//!
//! Every function here panics on a bug: a panic in kiln (the loader or a
//! parser), or a built-in validator type's `check` trapping instead of
//! returning a plan or a spec error. Errors for bad input are expected and
//! are formatted, since a message is code that runs on the input too.

#![allow(dead_code)]

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use kiln::host::{builtin_declarations, ComponentHost, HostOptions, Outcome, ValidatorType};
use kiln::manifest::LoadOptions;
use kiln::yaml::{parse_bytes, YamlLimits};
use kiln::Kiln;

/// The YAML reader manifests go through: parse, then walk the tree the ways
/// the loader does (JSON for components, JSON pointers back to marks).
pub fn yaml(data: &[u8]) {
    let document = match parse_bytes(data, YamlLimits::default()) {
        Ok(Some(document)) => document,
        Ok(None) => return,
        Err(error) => {
            let _ = format!("{}: {}", error.mark, error.message);
            return;
        }
    };
    let json = document.to_json();
    let _ = json.to_string();
    // A key that is not a string (`? [a, b]`, `~`) has no pointer back
    // into the tree, so a miss is fine; a panic is not.
    for pointer in pointers(&json, String::new(), 64) {
        let _ = document.at_pointer(&pointer);
        let _ = document.mark_at_pointer(&pointer);
    }
    let _ = document.mark_at_pointer("/~1x/~0y/00/");
    let _ = kiln::manifest::pointer_to_path("/0/a~1b/~0");
}

/// Up to `budget` JSON pointers into `value`, as components name places.
fn pointers(value: &serde_json::Value, at: String, budget: usize) -> Vec<String> {
    let mut out = vec![at.clone()];
    let children: Vec<(String, &serde_json::Value)> = match value {
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        _ => Vec::new(),
    };
    for (token, child) in children {
        if out.len() >= budget {
            break;
        }
        let left = budget - out.len();
        out.extend(pointers(child, format!("{at}/{token}"), left));
    }
    out
}

/// Inventories: the first byte picks the file name (and so, by extension
/// or by content, the format), the rest is the text.
pub fn inventory(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let file = ["hosts", "hosts.ini", "hosts.yml", "inventory.txt"][usize::from(pick % 4)];
    let _ = kiln::inventory::detect_format(file, text);
    match kiln::inventory::parse_inventory(file, text) {
        Ok(hosts) => {
            assert!(!hosts.is_empty(), "an inventory with no hosts is an error");
            let _ = format!("{hosts:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// The whole manifest loader, built-in types and all, on a file in a
/// directory holding a few resources for `script`/`copy_script` to find.
pub struct Manifests {
    kiln: Kiln,
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Manifests {
    pub fn new() -> Self {
        let kiln = Kiln::new(HostOptions::default()).expect("kiln starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        for resource in ["a.sh", "scripts/b.sh"] {
            let path = dir.path().join(resource);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "#!/bin/sh\ntrue\n").unwrap();
        }
        let path = dir.path().join("image.yaml");
        Manifests { kiln, dir, path }
    }

    pub fn load(&self, data: &[u8]) {
        // Paths into the host's devices and system files, or out of the
        // manifest's directory, are kept out: kiln refuses a `.wasm` that is
        // not a regular file (tests/it/hostile/attacks.rs), and the fuzzer should spend
        // its time on the parsers, not on the machine's files.
        if [&b"/dev"[..], b"/proc", b"/sys", b".."]
            .iter()
            .any(|bad| data.windows(bad.len()).any(|w| w == *bad))
        {
            return;
        }
        std::fs::write(&self.path, data).expect("writing the manifest");
        match self.kiln.load(&self.path, &LoadOptions::default()) {
            Ok(manifest) => {
                let mut nodes = 0;
                manifest.root.walk(&mut |node, _| {
                    nodes += 1;
                    let _ = (&node.summary, &node.path, node.location.to_string());
                });
                assert!(nodes <= kiln::manifest::MAX_TREE_NODES + 1);
            }
            Err(error) => {
                let message = error.to_string();
                // Only built-in types can load here, and their `check` must
                // not trap (Outcome::Stopped is how a trap is reported).
                assert!(
                    !message.contains("checking the spec failed"),
                    "a built-in's check trapped: {message}"
                );
            }
        }
    }
}

impl Default for Manifests {
    fn default() -> Self {
        Self::new()
    }
}

/// Every built-in validator type's `check` on the same text (any UTF-8,
/// JSON or not; kiln itself only sends JSON). Each must return a plan or a
/// spec error: a trap is a bug.
pub struct Checks {
    _host: Arc<ComponentHost>,
    types: Vec<Arc<ValidatorType>>,
}

impl Checks {
    pub fn new() -> Self {
        let host = ComponentHost::new(HostOptions::default()).expect("the host starts");
        let types = builtin_declarations()
            .into_iter()
            .map(|declaration| host.load(declaration).expect("a built-in loads"))
            .collect();
        Checks { _host: host, types }
    }

    pub fn check(&self, data: &[u8]) {
        let Ok(spec) = std::str::from_utf8(data) else {
            return;
        };
        for (index, vtype) in self.types.iter().enumerate() {
            match vtype.check(spec) {
                Outcome::Returned(Ok(plan)) => {
                    signal(
                        index,
                        "plan",
                        &format!("{}{}", plan.nested.len(), plan.resources.len()),
                    );
                }
                Outcome::Returned(Err(error)) => signal(index, &error.pointer, &error.message),
                Outcome::Stopped(reason) => {
                    panic!(
                        "validator type `{}` trapped in check on {spec:?}: {reason}",
                        vtype.name
                    )
                }
            }
        }
    }
}

impl Default for Checks {
    fn default() -> Self {
        Self::new()
    }
}

/// Code coverage cannot see inside a component, so this hands libFuzzer a
/// stand-in: one of 64 branches per kind of answer (type, where in the
/// spec, the message without the quoted parts that echo the input), so
/// inputs that make a type answer differently are kept.
fn signal(index: usize, pointer: &str, message: &str) {
    let mut hasher = DefaultHasher::new();
    index.hash(&mut hasher);
    pointer
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .take(40)
        .collect::<String>()
        .hash(&mut hasher);
    message
        .split('`')
        .step_by(2)
        .collect::<String>()
        .chars()
        .take(60)
        .collect::<String>()
        .hash(&mut hasher);
    let _ = match hasher.finish() % 64 {
        0 => std::hint::black_box(0u8),
        1 => std::hint::black_box(1u8),
        2 => std::hint::black_box(2u8),
        3 => std::hint::black_box(3u8),
        4 => std::hint::black_box(4u8),
        5 => std::hint::black_box(5u8),
        6 => std::hint::black_box(6u8),
        7 => std::hint::black_box(7u8),
        8 => std::hint::black_box(8u8),
        9 => std::hint::black_box(9u8),
        10 => std::hint::black_box(10u8),
        11 => std::hint::black_box(11u8),
        12 => std::hint::black_box(12u8),
        13 => std::hint::black_box(13u8),
        14 => std::hint::black_box(14u8),
        15 => std::hint::black_box(15u8),
        16 => std::hint::black_box(16u8),
        17 => std::hint::black_box(17u8),
        18 => std::hint::black_box(18u8),
        19 => std::hint::black_box(19u8),
        20 => std::hint::black_box(20u8),
        21 => std::hint::black_box(21u8),
        22 => std::hint::black_box(22u8),
        23 => std::hint::black_box(23u8),
        24 => std::hint::black_box(24u8),
        25 => std::hint::black_box(25u8),
        26 => std::hint::black_box(26u8),
        27 => std::hint::black_box(27u8),
        28 => std::hint::black_box(28u8),
        29 => std::hint::black_box(29u8),
        30 => std::hint::black_box(30u8),
        31 => std::hint::black_box(31u8),
        32 => std::hint::black_box(32u8),
        33 => std::hint::black_box(33u8),
        34 => std::hint::black_box(34u8),
        35 => std::hint::black_box(35u8),
        36 => std::hint::black_box(36u8),
        37 => std::hint::black_box(37u8),
        38 => std::hint::black_box(38u8),
        39 => std::hint::black_box(39u8),
        40 => std::hint::black_box(40u8),
        41 => std::hint::black_box(41u8),
        42 => std::hint::black_box(42u8),
        43 => std::hint::black_box(43u8),
        44 => std::hint::black_box(44u8),
        45 => std::hint::black_box(45u8),
        46 => std::hint::black_box(46u8),
        47 => std::hint::black_box(47u8),
        48 => std::hint::black_box(48u8),
        49 => std::hint::black_box(49u8),
        50 => std::hint::black_box(50u8),
        51 => std::hint::black_box(51u8),
        52 => std::hint::black_box(52u8),
        53 => std::hint::black_box(53u8),
        54 => std::hint::black_box(54u8),
        55 => std::hint::black_box(55u8),
        56 => std::hint::black_box(56u8),
        57 => std::hint::black_box(57u8),
        58 => std::hint::black_box(58u8),
        59 => std::hint::black_box(59u8),
        60 => std::hint::black_box(60u8),
        61 => std::hint::black_box(61u8),
        62 => std::hint::black_box(62u8),
        _ => std::hint::black_box(63u8),
    };
}
