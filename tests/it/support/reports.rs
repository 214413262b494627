//! Checks a real `--report` file the way a CI system would read it: JSON
//! against docs/report.schema.json (with `boon`), JUnit XML against
//! tests/fixtures/junit.xsd (with `xmllint`, from Debian's libxml2-utils).
// Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Parses the JSON report at `path` and asserts it matches the schema.
pub fn valid_json_report(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{text}"));
    let schema = repo().join("docs/report.schema.json");
    let mut schemas = boon::Schemas::new();
    let index = boon::Compiler::new()
        .compile(schema.to_str().unwrap(), &mut schemas)
        .unwrap_or_else(|e| panic!("docs/report.schema.json does not compile: {e:#}"));
    if let Err(error) = schemas.validate(&report, index) {
        panic!("the report does not match docs/report.schema.json: {error:#}\n{text}");
    }
    report
}

/// Asserts the JUnit XML report at `path` validates, and returns its text.
pub fn valid_junit_report(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(repo().join("tests/fixtures/junit.xsd"))
        .arg(path)
        .output()
        .expect("xmllint runs (.ci/install-deps installs libxml2-utils)");
    assert!(
        output.status.success(),
        "the JUnit report does not validate: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}
