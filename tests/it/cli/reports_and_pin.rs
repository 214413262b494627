//! `--report` and `--log-file` when the run ends before any validator (a
//! manifest that fails to load, an image that cannot be opened, an
//! unreachable host), and `kiln pin`; none needs a real target.

use super::*;

fn pack_with_report(dir: &Path, format: &str, manifest: &[&str]) -> (Output, PathBuf, PathBuf) {
    let report = dir.join(format!("report.{format}"));
    let log = dir.join("kiln.log");
    let image = dir.join("missing.qcow2");
    let mut args = vec![
        "pack",
        "--image",
        image.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--report-format",
        format,
        "--log-file",
        log.to_str().unwrap(),
    ];
    args.extend(manifest);
    (kiln(&args), report, log)
}

#[test]
fn a_report_and_log_are_written_when_the_manifest_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let (output, report, log) = pack_with_report(
        dir.path(),
        "json",
        &["--manifest", "tests/malformed/unknown_type.yaml"],
    );
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    let report = reports::valid_json_report(&report);
    assert_eq!(report["command"], "pack");
    assert_eq!(report["passed"], false);
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["kiln_version"], env!("CARGO_PKG_VERSION"));
    assert!(report["arguments"]
        .as_array()
        .unwrap()
        .contains(&"--report-format".into()));
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("unknown validator type `pakage`"), "{error}");
    // The image named is there, with the error that kept it from running.
    let target = &report["targets"][0];
    assert_eq!(target["kind"], "image", "{report:#}");
    assert_eq!(target["result"], "error", "{report:#}");
    assert_eq!(target["validators"], serde_json::json!([]), "{report:#}");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.starts_with("kiln "), "{log}");
    assert!(
        log.contains("kiln: ") && log.contains("unknown validator type"),
        "{log}"
    );

    let (output, report, _) = pack_with_report(
        dir.path(),
        "junit",
        &["--manifest", "tests/malformed/unknown_type.yaml"],
    );
    assert_eq!(output.status.code(), Some(2));
    let xml = reports::valid_junit_report(&report);
    assert!(xml.contains("<error type=\"error\""), "{xml}");
    assert!(xml.contains("errors=\"1\""), "{xml}");
}

#[test]
fn a_report_lists_every_validator_as_not_run_when_the_image_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (output, report, _) = pack_with_report(dir.path(), "json", &["demo", "1.0"]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    let report = reports::valid_json_report(&report);
    assert!(report["manifest"]
        .as_str()
        .unwrap()
        .ends_with("manifests/demo/1.0/image.yaml"));
    assert_eq!(
        report["manifest_arguments"]["tools"], "minimal",
        "{report:#}"
    );
    let target = &report["targets"][0];
    assert_eq!(target["result"], "error", "{report:#}");
    assert!(target["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing.qcow2"));
    let validators = target["validators"].as_array().unwrap();
    // `kiln lint` counts 8 validators in the demo manifest: all listed,
    // flow control and what it nests included, none run.
    assert_eq!(validators.len(), 8, "{report:#}");
    assert!(validators.iter().all(|v| v["status"] == "not run"));
    assert!(validators
        .iter()
        .any(|v| v["path"] == "validators[2].argument_case.cases.full[0].package"));

    let (_, report, _) = pack_with_report(dir.path(), "junit", &["demo", "1.0"]);
    let xml = reports::valid_junit_report(&report);
    assert!(
        xml.contains("tests=\"9\" failures=\"0\" errors=\"1\" skipped=\"8\""),
        "{xml}"
    );
    assert!(xml.contains("<skipped message=\"not run\"/>"), "{xml}");
}

#[test]
fn an_unreachable_host_is_in_the_report_with_nothing_run() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // Port 1 on loopback refuses at once.
    let output = kiln(&[
        "validate",
        "--host",
        "root@127.0.0.1:1",
        "--connect-timeout",
        "5",
        "--report",
        report.to_str().unwrap(),
        "demo",
        "1.0",
    ]);
    assert_eq!(output.status.code(), Some(1), "{:?}", text(&output));
    let report = reports::valid_json_report(&report);
    let target = &report["targets"][0];
    assert_eq!(target["target"], "root@127.0.0.1:1", "{report:#}");
    assert_eq!(target["kind"], "host");
    assert_eq!(target["result"], "unreachable");
    assert_eq!(target["validators"].as_array().unwrap().len(), 8);
    assert!(target["validators"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "not run"));
}

#[test]
fn pin_rewrites_stale_digests_in_place() {
    let wasm = component("kiln_hostile_attacks");
    let digest = support::sha256_file(&wasm);
    let stale = "0".repeat(64);
    let yaml = format!(
        "# my site\nvalidator_types:\n  attacks:   # the test type\n    wasm: {w}   # rebuilt often\n    sha256: \"{stale}\"  # pinned\n    grants: [exec]\n  narrow: {{wasm: {w}, grants: [exec]}}\nvalidators: []\n",
        w = wasm.display()
    );
    let fixture = Fixture::new(&yaml, &[]);
    let manifest = fixture.path.to_str().unwrap();
    // A stale digest refuses the manifest; `pin --check` says so.
    assert_eq!(kiln(&["lint", manifest]).status.code(), Some(2));
    assert_eq!(kiln(&["pin", "--check", manifest]).status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&fixture.path).unwrap(), yaml);

    let output = kiln(&["pin", manifest]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert!(
        text(&output).0.contains("2 digest(s) rewritten"),
        "{:?}",
        text(&output)
    );
    // Only the digests changed: comments, quotes' place and layout stay.
    let expected = yaml
        .replace(&format!("\"{stale}\""), &digest)
        .replace("{wasm: ", &format!("{{sha256: {digest}, wasm: "));
    assert_eq!(std::fs::read_to_string(&fixture.path).unwrap(), expected);
    assert_eq!(kiln(&["lint", manifest]).status.code(), Some(0));
    assert_eq!(kiln(&["pin", "--check", manifest]).status.code(), Some(0));
}
