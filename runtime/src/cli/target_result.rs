//! What became of one target (an image or a host) in a run, as one value:
//! the closing table, the host error lines and the report all name it, so
//! the words they print and the words the report schema allows
//! (`docs/report.schema.json`) come from this one place rather than from
//! strings compared in several.

use kiln::interrupt::Stop;
use serde::{Serialize, Serializer};

use super::Paint;

/// A target's result, displayed (and written to reports) as
/// `passed`, `failed`, `unreachable`, `interrupted`, `timed-out`, `error`
/// or `not run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetResult {
    Passed,
    /// A validator failed.
    Failed,
    /// The connection (or the target's distro) was lost or never made.
    Unreachable,
    /// A signal stopped the run.
    Interrupted,
    /// `--timeout` stopped the run.
    TimedOut,
    /// The target could not be opened or used.
    Error,
    /// The run ended before it reached the target.
    NotRun,
}

impl TargetResult {
    /// The result of a target the run was stopped on.
    pub fn after(stop: Stop) -> TargetResult {
        match stop {
            Stop::Signal(_) => TargetResult::Interrupted,
            Stop::Timeout(_) => TargetResult::TimedOut,
        }
    }

    /// The word as the reports and the closing table's cells write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetResult::Passed => "passed",
            TargetResult::Failed => "failed",
            TargetResult::Unreachable => "unreachable",
            TargetResult::Interrupted => "interrupted",
            TargetResult::TimedOut => "timed-out",
            TargetResult::Error => "error",
            TargetResult::NotRun => "not run",
        }
    }

    /// The word in capitals, for a host's error line.
    pub fn shouted(self) -> &'static str {
        match self {
            TargetResult::Passed => "PASSED",
            TargetResult::Failed => "FAILED",
            TargetResult::Unreachable => "UNREACHABLE",
            TargetResult::Interrupted => "INTERRUPTED",
            TargetResult::TimedOut => "TIMED-OUT",
            TargetResult::Error => "ERROR",
            TargetResult::NotRun => "NOT RUN",
        }
    }

    /// The colour of the word: only a pass is good news.
    pub fn paint(self) -> Paint {
        match self {
            TargetResult::Passed => Paint::Good,
            _ => Paint::Bad,
        }
    }
}

impl std::fmt::Display for TargetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TargetResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_read_as_the_report_schema_spells_them() {
        let all = [
            TargetResult::Passed,
            TargetResult::Failed,
            TargetResult::Unreachable,
            TargetResult::Interrupted,
            TargetResult::TimedOut,
            TargetResult::Error,
            TargetResult::NotRun,
        ];
        let words: Vec<String> = all.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            words,
            [
                "passed",
                "failed",
                "unreachable",
                "interrupted",
                "timed-out",
                "error",
                "not run"
            ]
        );
        // The report schema's list of target results is exactly these.
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/report.schema.json")).unwrap();
        let mut schema_words = target_result_enum(&schema).expect("a result enum in the schema");
        schema_words.sort();
        let mut serialized: Vec<String> = all
            .iter()
            .map(|r| {
                serde_json::to_value(r)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        serialized.sort();
        assert_eq!(serialized, schema_words);
        assert_eq!(
            TargetResult::after(Stop::Timeout(Duration::from_secs(1))),
            TargetResult::TimedOut
        );
    }

    /// The schema's `enum` that lists `unreachable`: the target results.
    fn target_result_enum(value: &serde_json::Value) -> Option<Vec<String>> {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(words)) = map.get("enum") {
                    if words.iter().any(|w| w == "unreachable") {
                        return Some(
                            words
                                .iter()
                                .filter_map(|w| w.as_str().map(String::from))
                                .collect(),
                        );
                    }
                }
                map.values().find_map(target_result_enum)
            }
            serde_json::Value::Array(items) => items.iter().find_map(target_result_enum),
            _ => None,
        }
    }
}
