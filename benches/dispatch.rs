//! kiln's own cost without a real target: what dispatching one validator
//! through the WebAssembly layer costs next to a native Rust implementation
//! of the same validator (`package` in test-only mode: one `dpkg -s`), on the
//! in-memory `ScriptedRemote`; a whole one-validator manifest through the
//! interpreter; and the CDH 5.11.0 corpus manifest run test-only (ubuntu and
//! centos), with its round-trip count. Prints a Markdown table for
//! BENCHMARKS.md.
//!
//!   cargo bench --bench dispatch            # ITERATIONS=N to change the count

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln::host::{HostOptions, LogLevel, RunScope};
use kiln::interpreter::Quiet;
use kiln::manifest::resources::ResourceReadError;
use kiln::manifest::LoadOptions;
use kiln::remote::scripted::ScriptedRemote;
use kiln::remote::{
    CommandOutput, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
};
use kiln::Kiln;

fn main() {
    let iterations: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let cache = tempfile::tempdir().expect("a temp dir");
    let started = Instant::now();
    let kiln = Kiln::new(HostOptions {
        cache_dir: Some(cache.path().to_path_buf()),
    })
    .expect("kiln starts");
    let cold_setup = started.elapsed();
    let started = Instant::now();
    drop(Kiln::new(HostOptions {
        cache_dir: Some(cache.path().to_path_buf()),
    }));
    let warm_setup = started.elapsed();

    println!("| measurement | per call | notes |");
    println!("| --- | ---: | --- |");
    row(
        "Kiln::new, cold cache",
        cold_setup,
        "engine + compiling 8 built-ins",
    );
    row(
        "Kiln::new, warm cache",
        warm_setup,
        "engine + deserialising 8 built-ins",
    );

    let package = kiln.types().get("package").expect("package is built in");
    let spec = r#"["less"]"#;
    let scope = Arc::new(BenchScope::new());
    let wasm = per_call(iterations, || {
        let report = package.run(spec, true, scope.clone());
        assert!(matches!(
            report.outcome,
            kiln::host::Outcome::Returned(Ok(()))
        ));
    });
    let native = per_call(iterations, || {
        native_package(&*scope, &["less"], true).expect("installed");
    });
    row(
        "`package` test-only, WebAssembly (`ValidatorType::run`)",
        wasm,
        "fresh Store + instantiate + run + 1 host command",
    );
    row(
        "`package` test-only, native Rust",
        native,
        "same command through the same scope",
    );
    row(
        "dispatch overhead of the WebAssembly layer",
        wasm.saturating_sub(native),
        "target <= 25 µs",
    );
    let check = per_call(iterations, || {
        let _ = package.check(spec);
    });
    row(
        "`package` check (load-time)",
        check,
        "fresh Store + instantiate + check",
    );

    let dir = tempfile::tempdir().expect("a temp dir");
    let one = dir.path().join("one.yaml");
    std::fs::write(&one, "validators:\n  - package: less\n").unwrap();
    let manifest = kiln.load(&one, &LoadOptions::default()).expect("loads");
    let arguments = BTreeMap::new();
    let whole = per_call(iterations, || {
        let (summary, _) = kiln.run(
            &manifest,
            ScriptedRemote::new("debian"),
            &arguments,
            true,
            Box::new(Quiet),
        );
        assert!(summary.passed());
    });
    row(
        "one-validator manifest through the interpreter",
        whole,
        "root `all` + `package`: 2 dispatches, run thread",
    );

    for distro in ["ubuntu", "centos"] {
        let (cdh, _stand_ins) = cdh_manifest();
        let manifest = kiln.load(&cdh, &LoadOptions::default()).expect("CDH loads");
        let mut summary = None;
        let per_run = per_call(iterations / 10 + 1, || {
            let (s, _) = kiln.run(
                &manifest,
                ScriptedRemote::new(distro),
                &arguments,
                true,
                Box::new(Quiet),
            );
            summary = Some(s);
        });
        let summary = summary.unwrap();
        let validators = summary.records.len() as u32;
        row(
            &format!("CDH 5.11.0 test-only on ScriptedRemote ({distro})"),
            per_run,
            &format!(
                "{validators} validator runs, {} commands, {} per validator, {}",
                summary.commands,
                micros(per_run / validators.max(1)),
                if summary.passed() { "passed" } else { "failed" }
            ),
        );
    }
}

/// The `package` validator's test-only logic written in Rust: what the
/// WebAssembly component does, minus the component.
fn native_package(scope: &dyn RunScope, packages: &[&str], test_only: bool) -> Result<(), String> {
    let command = RemoteCommand::new(format!("dpkg -s {}", packages.join(" ")));
    let result = scope.run_command(&command);
    match result {
        Ok(output) if output.exit_code == 0 => Ok(()),
        Ok(output) if test_only => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        Ok(_) => unreachable!("the benchmark runs test-only"),
        Err(e) => Err(e.to_string()),
    }
}

/// A run scope over a `ScriptedRemote` that answers every command with
/// success, as the interpreter's scope would, without a manifest.
struct BenchScope {
    remote: Mutex<ScriptedRemote>,
}

impl BenchScope {
    fn new() -> Self {
        BenchScope {
            remote: Mutex::new(ScriptedRemote::new("debian")),
        }
    }
}

impl RunScope for BenchScope {
    fn distro(&self) -> String {
        "debian".into()
    }
    fn run_command(&self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        // A fresh remote each time keeps the scripted call log from growing
        // over thousands of iterations.
        let mut remote = self.remote.lock().unwrap();
        *remote = ScriptedRemote::new("debian");
        remote.run(command)
    }
    fn write_file(&self, _: &FileWrite<'_>) -> Result<(), RemoteError> {
        Ok(())
    }
    fn read_file(&self, _: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        Ok(None)
    }
    fn file_metadata(&self, _: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        Ok(None)
    }
    fn read_resource(&self, _: &str, _: usize) -> Result<Vec<u8>, ResourceReadError> {
        Err(ResourceReadError::Failed("no resources".into()))
    }
    fn get_argument(&self, _: &str) -> Option<String> {
        None
    }
    fn set_argument(&self, _: &str, _: &str) {}
    fn run_nested(&self, _: u32, _: bool) -> Result<(), String> {
        Err("no nested blocks".into())
    }
    fn nested_count(&self) -> usize {
        0
    }
    fn log(&self, _: LogLevel, _: &str) {}
}

/// A copy of the CDH 5.11.0 corpus manifest with empty stand-ins for the
/// scripts its RESOURCES file lists. The corpus lives outside the
/// repository: `KILN_SAHARA_CORPUS` names it, as for the tests.
fn cdh_manifest() -> (PathBuf, tempfile::TempDir) {
    let corpus = std::env::var_os("KILN_SAHARA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            eprintln!(
                "set KILN_SAHARA_CORPUS to Sahara's corpus (…/corpus/sahara) to run this benchmark"
            );
            std::process::exit(2)
        })
        .join("cdh/v5_11_0");
    let dir = tempfile::tempdir().expect("a temp dir");
    let manifest = dir.path().join("image.yaml");
    std::fs::copy(corpus.join("image.yaml"), &manifest).expect("the CDH corpus manifest");
    let resources = std::fs::read_to_string(corpus.join("RESOURCES")).unwrap();
    for name in resources.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }
    (manifest, dir)
}

/// The median time of one call, over `iterations` calls after a warm-up.
fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..(iterations / 10).max(3) {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

fn row(what: &str, d: Duration, notes: &str) {
    println!("| {what} | {} | {notes} |", micros(d));
}
