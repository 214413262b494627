//! A hostile validator type for kiln's sandbox tests: its spec names one
//! attack (`attack: NAME`) and its parameters, so that each case of
//! `tests/it/hostile/` is one manifest entry. Every attack tries what a
//! hostile author would, ignores refusals where ignoring them could help
//! it, and reports what it got: `run` fails with `REPORT: ...` listing the
//! answers, or passes noting each answer as a change, so a test can see
//! exactly what kiln handed back.

use kiln_validator_sdk::{
    export_validator, host, leaf_plan, parse_spec, spec_error, BlockShape, CommandOutput, Guest,
    LogLevel, NestedBlock, Plan, SpecError, Value,
};

struct Attacks;

fn field<'a>(spec: &'a Value, name: &str) -> &'a str {
    spec.get(name).and_then(Value::as_str).unwrap_or("")
}

fn number(spec: &Value, name: &str) -> usize {
    field(spec, name).parse().unwrap_or(0)
}

fn words(spec: &Value, name: &str) -> Vec<String> {
    match spec.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().unwrap_or("").to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// `env: {NAME: VALUE}` as entries.
fn env(spec: &Value) -> Vec<(String, String)> {
    match spec.get("env") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// What a command call answered, as one line of the report.
fn ran(got: Result<CommandOutput, String>) -> String {
    match got {
        Ok(output) => format!(
            "ran, exit {} stdout {:?}",
            output.exit_code,
            String::from_utf8_lossy(&output.stdout)
        ),
        Err(e) => format!("refused: {e}"),
    }
}

fn octal(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok()
}

fn plain(text: &str) -> Option<u32> {
    text.parse().ok()
}

impl Guest for Attacks {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let spec = parse_spec(&spec)?;
        match field(&spec, "attack") {
            // Names the same block `copies` times: a 250-byte manifest
            // nesting this three deep would plan 64^3 nodes.
            "plan_bomb" => Ok(Plan {
                nested: (0..number(&spec, "copies"))
                    .map(|_| NestedBlock {
                        pointer: "/block".into(),
                        shape: BlockShape::Sequence,
                    })
                    .collect(),
                resources: Vec::new(),
                summary: "plan bomb".into(),
            }),
            "escalate" | "nested_loop" | "repeat" => Ok(Plan {
                nested: vec![NestedBlock {
                    pointer: "/block".into(),
                    shape: BlockShape::Sequence,
                }],
                resources: Vec::new(),
                summary: "runs its block".into(),
            }),
            // A summary that would retitle the terminal and forge a line.
            "escapes" => Ok(leaf_plan(
                "\u{1b}]0;owned\u{7}\u{1b}[2K\r\u{1b}[32mall passed\u{1b}[0m",
            )),
            "" => Err(spec_error("", "name an attack")),
            _ => Ok(leaf_plan(format!("attack {}", field(&spec, "attack")))),
        }
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let spec = parse_spec(&spec)?;
        let mut answers: Vec<String> = Vec::new();
        match field(&spec, "attack") {
            "command" => answers.push(ran(host::run_command(
                field(&spec, "command"),
                &env(&spec),
            ))),
            "program" => answers.push(ran(host::run_program(
                &words(&spec, "argv"),
                &env(&spec),
            ))),
            "read" => answers.push(match host::read_file(field(&spec, "path")) {
                Ok(Some(bytes)) => format!("read {} bytes", bytes.len()),
                Ok(None) => "read: no such file".into(),
                Err(e) => format!("refused: {e}"),
            }),
            "metadata" => answers.push(match host::file_metadata(field(&spec, "path")) {
                Ok(Some(m)) => format!(
                    "metadata {:?} size {} mode {:o} owner {}:{}",
                    m.kind, m.size, m.mode, m.uid, m.gid
                ),
                Ok(None) => "metadata: nothing there".into(),
                Err(e) => format!("refused: {e}"),
            }),
            "write" => {
                let contents = field(&spec, "contents").as_bytes();
                let got = match field(&spec, "mode") {
                    "" => host::write_file_with(
                        field(&spec, "path"),
                        contents,
                        host::WriteOptions {
                            mode: None,
                            uid: plain(field(&spec, "uid")),
                            gid: plain(field(&spec, "gid")),
                        },
                    ),
                    mode => host::write_file(field(&spec, "path"), contents, octal(mode).unwrap_or(0o644)),
                };
                answers.push(match got {
                    Ok(()) => "written".into(),
                    Err(e) => format!("refused: {e}"),
                });
            }
            "set_arguments" => {
                let value = "x".repeat(number(&spec, "bytes"));
                for i in 0..number(&spec, "times") {
                    if let Err(e) = host::set_argument(&format!("flood_{i}"), &value) {
                        answers.push(format!("refused: {e}"));
                        break;
                    }
                }
            }
            // Asks for reconcile mode whatever mode it was run in.
            "escalate" => {
                answers.push(match host::run_nested(0, false) {
                    Ok(()) => "nested block passed".into(),
                    Err(e) => format!("nested block failed: {e}"),
                });
                answers.push(format!("was run test_only={test_only}"));
            }
            // Runs its block `times` times, passing a failure up unchanged.
            "repeat" => {
                for _ in 0..number(&spec, "times") {
                    host::run_nested(0, test_only)?;
                }
            }
            // Keeps its call alive by running its block again and again.
            "nested_loop" => loop {
                let _ = host::run_nested(0, test_only);
            },
            "escapes" => {
                host::log(LogLevel::Warn, "\u{1b}[1A\u{1b}[2K\u{1b}[32mPASSED\u{1b}[0m everything");
                host::note_change("\u{1b}]0;pwned\u{7}changed");
                return Err("\u{1b}[2K\r\u{1b}[32m✔ all validators passed\u{1b}[0m\nreally".into());
            }
            other => return Err(format!("unknown attack {other}")),
        }
        let report = answers.join(" | ");
        if answers.iter().any(|a| a.starts_with("refused") || a.contains("failed")) {
            Err(format!("REPORT: {report}"))
        } else {
            for answer in &answers {
                host::note_change(answer);
            }
            Ok(())
        }
    }
}

export_validator!(Attacks);
