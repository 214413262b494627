//! Third-party validator types from the outside: the example `file_content`
//! type exercised end to end (in a manifest's `validator_types` and through
//! `kiln lint --validators DIR`), every way loading one is refused (not
//! wasm, a core module, another world, a missing export, a checksum
//! mismatch, a clash with a built-in, a bad declaration), and the versioning
//! rules of the `kiln:validator` package.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::host::{versions_compatible, WIT_VERSION};
use kiln::interpreter::{Quiet, RunSummary, Status};
use kiln::remote::scripted::{Call, ScriptedRemote};
use sha2::{Digest, Sha256};
use support::{args, component, kiln, repo_root, Fixture};

fn file_content_wasm() -> PathBuf {
    component("kiln_example_file_content")
}

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A manifest declaring one type `name` from `wasm` with the given extra
/// declaration lines, and running `validators`.
fn manifest(name: &str, wasm: &Path, declaration: &str, validators: &str) -> String {
    format!(
        "validator_types:\n  {name}:\n    wasm: {}\n{declaration}validators:\n{validators}",
        wasm.display()
    )
}

fn load_error(yaml: &str, files: &[(&str, &str)]) -> (String, Fixture) {
    let fixture = Fixture::new(yaml, files);
    let message = fixture
        .load()
        .expect_err("the manifest must be refused")
        .to_string();
    (message, fixture)
}

fn run(fixture: &Fixture, remote: &ScriptedRemote, test_only: bool) -> RunSummary {
    let manifest = fixture.manifest();
    kiln()
        .run(
            &manifest,
            remote.clone(),
            &args(&[]),
            test_only,
            Box::new(Quiet),
        )
        .0
}

fn assert_contains(message: &str, fragment: &str) {
    assert!(
        message.contains(fragment),
        "expected `{fragment}` in: {message}"
    );
}

// ---- the example type, end to end ----

const MOTD: &str = "  - file_content:\n      path: /etc/motd\n      content: \"Authorised use only.\\n\"\n      mode: '0640'\n";

#[test]
fn file_content_checks_writes_and_then_passes() {
    let wasm = file_content_wasm();
    let declaration = format!(
        "    sha256: {}\n    grants: [read-file, write-file]\n",
        sha256_of(&wasm)
    );
    let fixture = Fixture::new(&manifest("file_content", &wasm, &declaration, MOTD), &[]);
    let remote = ScriptedRemote::new("debian");

    let first = run(&fixture, &remote, true);
    let message = first.outcome.as_ref().unwrap_err().to_string();
    assert_contains(&message, "validators[0].file_content");
    assert_contains(&message, "/etc/motd is missing");
    assert_eq!(remote.calls(), [Call::Read("/etc/motd".into())]);

    let second = run(&fixture, &remote, false);
    assert!(second.passed(), "{:?}", second.outcome);
    assert_eq!(
        second.leaf_results()[0].status,
        Status::Changed(vec!["wrote /etc/motd".into()])
    );
    assert_eq!(
        remote.calls()[1..],
        [
            Call::Read("/etc/motd".into()),
            Call::Write {
                path: "/etc/motd".into(),
                contents: b"Authorised use only.\n".to_vec(),
                mode: Some(0o640),
            },
        ]
    );

    let third = run(&fixture, &remote, true);
    assert!(third.passed(), "{:?}", third.outcome);
    assert_eq!(third.leaf_results()[0].status, Status::InPlace);
    assert_eq!(remote.calls().len(), 4, "one more read, no write");
}

#[test]
fn file_content_reports_a_differing_file_and_rewrites_it() {
    let wasm = file_content_wasm();
    let fixture = Fixture::new(
        &manifest(
            "file_content",
            &wasm,
            "    grants: [read-file, write-file]\n",
            MOTD,
        ),
        &[],
    );
    let remote = ScriptedRemote::new("debian").with_file("/etc/motd", b"old\n");
    let summary = run(&fixture, &remote, true);
    assert_contains(
        &summary.outcome.unwrap_err().to_string(),
        "/etc/motd differs from the manifest (4 bytes on the target, 21 expected)",
    );
    assert!(run(&fixture, &remote, false).passed());
    assert_eq!(remote.file("/etc/motd").unwrap(), b"Authorised use only.\n");
}

#[test]
fn file_content_spec_errors_point_at_the_place() {
    let wasm = file_content_wasm();
    let declare = "    grants: [read-file, write-file]\n";
    let cases = [
        // (validators, line:col, message)
        (
            "  - file_content: {path: /etc/motd, content: x, mode: '999'}\n",
            "6:49",
            "validators[0].file_content.mode: mode `999` is not an octal file mode like 0644",
        ),
        (
            "  - file_content: {path: etc/motd, content: x}\n",
            "6:20",
            "validators[0].file_content.path: path `etc/motd` must be absolute",
        ),
        (
            "  - file_content: {path: /etc/motd, content: x, owner: root}\n",
            "6:49",
            "validators[0].file_content.owner: unknown key `owner` (known: path, content, mode)",
        ),
        (
            "  - file_content: {path: /etc/motd}\n",
            "6:19",
            "validators[0].file_content: file_content needs `content`",
        ),
        (
            "  - file_content: [/etc/motd]\n",
            "6:19",
            "file_content needs a map with path and content, found a list",
        ),
    ];
    for (validators, position, expected) in cases {
        let (message, fixture) =
            load_error(&manifest("file_content", &wasm, declare, validators), &[]);
        assert!(
            message.starts_with(&format!("{}:{position}: ", fixture.path.display())),
            "expected {position}: {message}"
        );
        assert_contains(&message, expected);
    }
}

/// A `--validators DIR` with `file_content.wasm` and its sidecar.
fn validator_dir(sidecar: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(file_content_wasm(), dir.path().join("file_content.wasm")).unwrap();
    std::fs::write(dir.path().join("file_content.yaml"), sidecar).unwrap();
    dir
}

fn kiln_lint(validators: &Path, manifest: &Path) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("lint")
        .arg("--validators")
        .arg(validators)
        .arg("--cache-dir")
        .arg(cache.path())
        .arg(manifest)
        .output()
        .expect("the kiln binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn file_content_loads_from_a_validators_dir_through_the_cli() {
    let sha = sha256_of(&file_content_wasm());
    let dir = validator_dir(&format!(
        "grants: [read-file, write-file]\nsha256: {sha}\nlimits: {{seconds: 5}}\n"
    ));
    let good = Fixture::new(&format!("validators:\n{MOTD}"), &[]);
    let (code, stdout, stderr) = kiln_lint(dir.path(), &good.path);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The sidecar grants write-file without `paths`: lint says so, and
    // still passes.
    assert_contains(&stdout, ": ok (0 arguments, 1 validators, 1 warning)");
    assert_contains(&stderr, "warning: validator type `file_content`");

    let bad = Fixture::new(
        "validators:\n  - file_content: {path: /etc/motd, content: x, mode: rw}\n",
        &[],
    );
    let (code, _, stderr) = kiln_lint(dir.path(), &bad.path);
    assert_eq!(code, 2, "{stderr}");
    assert_contains(
        &stderr,
        &format!(
            "{}:2:49: validators[0].file_content.mode: mode `rw` is not an octal file mode",
            bad.path.display()
        ),
    );
}

#[test]
fn a_bad_sidecar_is_refused_with_its_position() {
    let dir = validator_dir("grants: [read-file, root]\n");
    let good = Fixture::new(&format!("validators:\n{MOTD}"), &[]);
    let (code, _, stderr) = kiln_lint(dir.path(), &good.path);
    assert_eq!(code, 2, "{stderr}");
    assert_contains(
        &stderr,
        &format!(
            "{}:1:21: validator type `file_content`: unknown grant `root`",
            dir.path().join("file_content.yaml").display()
        ),
    );
}

#[test]
fn a_wrong_sha256_in_a_sidecar_stops_the_cli_before_any_manifest() {
    let dir = validator_dir(&format!(
        "grants: [read-file]\nsha256: {}\n",
        "0".repeat(64)
    ));
    let good = Fixture::new(&format!("validators:\n{MOTD}"), &[]);
    let (code, stdout, stderr) = kiln_lint(dir.path(), &good.path);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stdout.contains("ok"), "{stdout}");
    assert_contains(&stderr, "was declared; refusing to run it");
}

// ---- loading refusals ----

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let (message, fixture) = load_error(
        &manifest(
            "shell",
            Path::new("shell.wasm"),
            "    grants: [exec]\n",
            "  - shell: ~\n",
        ),
        &[("shell.wasm", "#!/bin/sh\nrm -rf /\n")],
    );
    assert!(
        message.starts_with(&format!("{}:2:3: ", fixture.path.display())),
        "{message}"
    );
    assert_contains(&message, "validator type `shell`: ");
    assert_contains(&message, "shell.wasm is not a WebAssembly file");
}

#[test]
fn a_core_module_is_refused_with_how_to_make_a_component() {
    let fixture = Fixture::new(
        &manifest(
            "core",
            Path::new("core.wasm"),
            "    grants: []\n",
            "  - core: ~\n",
        ),
        &[],
    );
    // The smallest valid core module: the magic and version 1, no sections.
    std::fs::write(fixture.dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let message = fixture.load().unwrap_err().to_string();
    assert_contains(
        &message,
        "core.wasm is a core WebAssembly module, not a component; build it for wasm32-wasip2",
    );
}

#[test]
fn a_component_for_another_world_is_refused() {
    let (message, _) = load_error(
        &manifest(
            "greeter",
            &component("kiln_hostile_wrong_world"),
            "    grants: []\n",
            "  - greeter: ~\n",
        ),
        &[],
    );
    assert_contains(
        &message,
        "validator type `greeter` cannot be linked: it exports greet but not kiln:validator/validator",
    );
}

#[test]
fn a_component_missing_an_export_is_refused_at_load() {
    let (message, _) = load_error(
        &manifest(
            "check_only",
            &component("kiln_hostile_missing_run"),
            "    grants: []\n",
            "  - check_only: ~\n",
        ),
        &[],
    );
    assert_contains(
        &message,
        &format!("validator type `check_only` cannot be linked: it does not export kiln:validator/validator@{WIT_VERSION}"),
    );
    assert_contains(&message, "run");
}

#[test]
fn a_sha256_mismatch_refuses_before_the_target_is_touched() {
    let remote = ScriptedRemote::new("debian");
    let wasm = file_content_wasm();
    let wrong = "ab".repeat(32);
    let (message, fixture) = load_error(
        &manifest(
            "file_content",
            &wasm,
            &format!("    sha256: {wrong}\n    grants: [read-file, write-file]\n"),
            MOTD,
        ),
        &[],
    );
    assert!(
        message.starts_with(&format!("{}:2:3: ", fixture.path.display())),
        "{message}"
    );
    assert_contains(
        &message,
        &format!(
            "validator type `file_content`: {} has sha256 {}, but {wrong} was declared; refusing to run it",
            wasm.display(),
            sha256_of(&wasm)
        ),
    );
    // Loading is the only way to a run, so the target was never reached.
    assert!(remote.calls().is_empty());
}

#[test]
fn a_clash_with_a_builtin_is_refused_unless_it_overrides() {
    let wasm = file_content_wasm();
    let validators = "  - package: {path: /etc/motd, content: hi}\n";
    let (message, fixture) = load_error(
        &manifest(
            "package",
            &wasm,
            "    grants: [read-file, write-file]\n",
            validators,
        ),
        &[],
    );
    assert!(
        message.starts_with(&format!("{}:2:3: ", fixture.path.display())),
        "{message}"
    );
    assert_contains(&message, "validator type `package` clashes with the built-in type of that name; rename it, or set `overrides: true`");

    let fixture = Fixture::new(
        &manifest(
            "package",
            &wasm,
            "    grants: [read-file, write-file]\n    overrides: true\n",
            validators,
        ),
        &[],
    );
    let remote = ScriptedRemote::new("debian");
    let summary = run(&fixture, &remote, false);
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.file("/etc/motd").unwrap(), b"hi");
    assert!(remote.commands().is_empty(), "the built-in did not run");
}

#[test]
fn bad_declarations_point_at_file_line_col() {
    let wasm = file_content_wasm();
    let cases = [
        (
            "    grants: [read-file, root]\n",
            "4:25",
            "validator type `file_content`: unknown grant `root` (known: exec, write-file, read-file, read-resource, set-argument, nested)",
        ),
        (
            "    grants: [read-file]\n    commands: ['systemctl *']\n",
            "3:5",
            "`commands` narrows the `exec` grant, which is not granted",
        ),
        (
            "    grants: []\n    limits: {minutes: 3}\n",
            "5:14",
            "unknown limit `minutes` (known: seconds, milliseconds, memory_mib, log_kib, output_mib, argument_kib, nested_reruns)",
        ),
        (
            "    grants: []\n    limits: {seconds: soon}\n",
            "5:23",
            "`soon` is not a whole number",
        ),
        (
            "    grants: []\n    sha256: abc\n",
            "5:13",
            "sha256 must be 64 hexadecimal digits",
        ),
        (
            "    grants: exec\n",
            "4:13",
            "expected a list, found",
        ),
        (
            "    grants: []\n    network: yes\n",
            "5:5",
            "unknown key `network`",
        ),
    ];
    for (declaration, position, expected) in cases {
        let (message, fixture) =
            load_error(&manifest("file_content", &wasm, declaration, MOTD), &[]);
        assert!(
            message.starts_with(&format!("{}:{position}: ", fixture.path.display())),
            "expected {position}: {message}"
        );
        assert_contains(&message, expected);
    }
}

// ---- an author outside this repository ----

/// Builds the `file_content` example as an author outside this repository
/// would: the crate alone in a directory of its own, depending on the SDK
/// by absolute path (docs/writing-validators.md), built offline for
/// wasm32-wasip2 from the warm registry cache (validators-wasm's lock file
/// pins the versions that cache holds). Returns the component's path.
fn build_outside_the_repository(dir: &Path) -> PathBuf {
    let example = repo_root().join("validators-wasm/examples/file_content");
    let sdk = repo_root()
        .join("validators-wasm/sdk")
        .canonicalize()
        .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::copy(example.join("src/lib.rs"), dir.join("src/lib.rs")).unwrap();
    std::fs::copy(
        repo_root().join("validators-wasm/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"outside-file-content\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nkiln-validator-sdk = {{ path = {:?} }}\n\
             serde_json = {{ version = \"1\", features = [\"preserve_order\"] }}\n\n\
             [workspace]\n",
            sdk.display().to_string()
        ),
    )
    .unwrap();
    // Kept between runs (under cargo's target directory), so only the
    // first run compiles wit-bindgen.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("outside-author");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(dir)
        .args([
            "build",
            "--offline",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        build.env_remove(var);
    }
    let output = build.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the copied example failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join("wasm32-wasip2/debug/outside_file_content.wasm")
}

#[test]
fn an_example_built_outside_the_repository_against_the_sdk_loads_and_runs() {
    let outside = tempfile::tempdir().unwrap();
    assert!(!outside
        .path()
        .starts_with(repo_root().canonicalize().unwrap()));
    let wasm = build_outside_the_repository(outside.path());
    let declaration = "    grants: [read-file, write-file]\n";
    let fixture = Fixture::new(&manifest("file_content", &wasm, declaration, MOTD), &[]);
    let remote = ScriptedRemote::new("debian");

    let check = run(&fixture, &remote, true);
    assert_contains(
        &check.outcome.as_ref().unwrap_err().to_string(),
        "/etc/motd is missing",
    );
    let fix = run(&fixture, &remote, false);
    assert!(fix.passed(), "{:?}", fix.outcome);
    assert_eq!(
        fix.leaf_results()[0].status,
        Status::Changed(vec!["wrote /etc/motd".into()])
    );
}

/// The SDK carries the contract inside it (a link to `wit/validator.wit`),
/// so what it binds is exactly what kiln serves.
#[test]
fn the_sdk_binds_the_current_contract() {
    let sdk_wit = repo_root().join("validators-wasm/sdk/wit/validator.wit");
    let wit = repo_root().join("wit/validator.wit");
    assert_eq!(
        std::fs::read_to_string(&sdk_wit).unwrap(),
        std::fs::read_to_string(&wit).unwrap(),
        "{} differs from {}",
        sdk_wit.display(),
        wit.display()
    );
}

// ---- versioning ----

#[test]
fn a_component_for_a_newer_major_version_is_refused_naming_both() {
    let (message, _) = load_error(
        &manifest(
            "future",
            &component("kiln_hostile_future_major"),
            "    grants: [exec]\n",
            "  - future: ~\n",
        ),
        &[],
    );
    assert_contains(
        &message,
        &format!("validator type `future` was built against kiln:validator@0.2.0; this kiln provides kiln:validator@{WIT_VERSION}; upgrade kiln to run it"),
    );
}

#[test]
fn a_component_built_against_an_older_compatible_version_loads_and_runs() {
    assert_eq!(
        WIT_VERSION, "0.1.2",
        "the fixture below is built against 0.1.0"
    );
    let fixture = Fixture::new(
        &manifest(
            "older",
            &component("kiln_hostile_older_minor"),
            "    grants: [exec]\n",
            "  - older: ~\n",
        ),
        &[],
    );
    let remote = ScriptedRemote::new("debian");
    let summary = run(&fixture, &remote, false);
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.commands(), ["echo built-against-0.1.0"]);
    assert_eq!(
        summary.leaf_results()[0].status,
        Status::Changed(vec!["ran under the 0.1.0 contract".into()])
    );
    assert_eq!(
        summary.leaf_results()[0].summary,
        "built against kiln:validator@0.1.0"
    );
}

#[test]
fn version_compatibility_follows_the_component_model() {
    for (component, host, compatible) in [
        ("0.1.0", "0.1.1", true),
        ("0.1.1", "0.1.1", true),
        ("0.1.2", "0.1.1", false),
        ("0.2.0", "0.1.1", false),
        ("0.0.9", "0.1.1", false),
        ("1.0.0", "1.3.0", true),
        ("1.4.0", "1.3.0", false),
        ("2.0.0", "1.3.0", false),
        ("not-a-version", "0.1.1", false),
    ] {
        assert_eq!(
            versions_compatible(component, host),
            compatible,
            "{component} on a {host} host"
        );
    }
}
