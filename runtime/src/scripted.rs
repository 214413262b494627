//! An in-memory scripted [`Remote`] for checking the interpreter's exact
//! semantics and for testing validator types without a real target: it
//! records every call, answers commands from rules given in advance, and
//! keeps written files in memory.
//!
//! ```
//! use kiln::scripted::ScriptedRemote;
//! use kiln::remote::CommandOutput;
//! let remote = ScriptedRemote::new("centos")
//!     .on("rpm -q", [CommandOutput::failure(1, "not installed"), CommandOutput::success("")]);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::remote::{CommandOutput, Remote, RemoteCommand, RemoteError};

/// One call the remote received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Run(RemoteCommand),
    Write {
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
    Read(String),
}

impl Call {
    /// The command text of a `Run`.
    pub fn command(&self) -> Option<&str> {
        match self {
            Call::Run(c) => Some(&c.script),
            _ => None,
        }
    }
}

struct Rule {
    prefix: String,
    /// Answers in order; the last one repeats.
    answers: Vec<CommandOutput>,
    used: usize,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    files: BTreeMap<String, Vec<u8>>,
}

/// The scripted remote. Clones share their log and files, so a test can keep
/// one to inspect after handing the other to a run.
#[derive(Clone)]
pub struct ScriptedRemote {
    distro: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    state: Arc<Mutex<State>>,
    unreachable: bool,
    /// Calls answered before the target "goes away".
    calls_before_loss: Option<usize>,
}

impl ScriptedRemote {
    pub fn new(distro: &str) -> Self {
        ScriptedRemote {
            distro: distro.to_string(),
            rules: Arc::default(),
            state: Arc::default(),
            unreachable: false,
            calls_before_loss: None,
        }
    }

    /// Commands starting with `prefix` get these answers in turn (the last
    /// repeats). Commands no rule matches succeed with no output. Later
    /// rules take precedence over earlier ones.
    pub fn on(self, prefix: &str, answers: impl IntoIterator<Item = CommandOutput>) -> Self {
        let answers: Vec<CommandOutput> = answers.into_iter().collect();
        assert!(!answers.is_empty(), "a rule needs at least one answer");
        self.rules.lock().unwrap().insert(
            0,
            Rule {
                prefix: prefix.to_string(),
                answers,
                used: 0,
            },
        );
        self
    }

    /// Every command fails as if the target had gone away.
    pub fn unreachable(mut self) -> Self {
        self.unreachable = true;
        self
    }

    /// Answers `calls` calls, then acts as if the target went away.
    pub fn lost_after(mut self, calls: usize) -> Self {
        self.calls_before_loss = Some(calls);
        self
    }

    /// Places a file on the fake target.
    pub fn with_file(self, path: &str, contents: &[u8]) -> Self {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), contents.to_vec());
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The command texts, in order.
    pub fn commands(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter_map(|c| c.command().map(str::to_string))
            .collect()
    }

    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.state.lock().unwrap().files.get(path).cloned()
    }

    /// Records a call; fails it when the target is (now) gone.
    fn log(&self, call: Call) -> Result<(), RemoteError> {
        let calls = {
            let mut state = self.state.lock().unwrap();
            state.calls.push(call);
            state.calls.len()
        };
        if self.unreachable || self.calls_before_loss.is_some_and(|limit| calls > limit) {
            return Err(self.gone());
        }
        Ok(())
    }

    fn gone(&self) -> RemoteError {
        RemoteError::Unreachable {
            target: self.name(),
            reason: "scripted as unreachable".into(),
        }
    }
}

impl Remote for ScriptedRemote {
    fn name(&self) -> String {
        format!("scripted {}", self.distro)
    }

    fn distro(&mut self) -> Result<String, RemoteError> {
        if self.unreachable {
            return Err(self.gone());
        }
        Ok(self.distro.clone())
    }

    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        self.log(Call::Run(command.clone()))?;
        let mut rules = self.rules.lock().unwrap();
        let Some(rule) = rules
            .iter_mut()
            .find(|r| command.script.starts_with(&r.prefix))
        else {
            return Ok(CommandOutput::default());
        };
        let answer = rule.answers[rule.used.min(rule.answers.len() - 1)].clone();
        rule.used += 1;
        Ok(answer)
    }

    fn write_file(&mut self, path: &str, contents: &[u8], mode: u32) -> Result<(), RemoteError> {
        self.log(Call::Write {
            path: path.to_string(),
            contents: contents.to_vec(),
            mode,
        })?;
        let mut state = self.state.lock().unwrap();
        state.files.insert(path.to_string(), contents.to_vec());
        Ok(())
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(Call::Read(path.to_string()))?;
        Ok(self.state.lock().unwrap().files.get(path).cloned())
    }
}
