//! An in-memory scripted [`Remote`] for checking the interpreter's exact
//! semantics and for testing validator types without a real target: it
//! records every call, answers commands from rules given in advance, and
//! keeps written files in memory.
//!
//! ```
//! use kiln::remote::scripted::ScriptedRemote;
//! use kiln::remote::CommandOutput;
//! let remote = ScriptedRemote::new("centos")
//!     .on("rpm -q", [CommandOutput::failure(1, "not installed"), CommandOutput::success("")]);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::remote::{
    CommandOutput, FileKind, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
    COMMAND_OUTPUT,
};

/// One call the remote received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Run(RemoteCommand),
    Write {
        path: String,
        contents: Vec<u8>,
        /// `None`: keep the existing file's mode.
        mode: Option<u32>,
    },
    Read(String),
    Metadata(String),
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

/// A file on the fake target.
#[derive(Clone)]
struct File {
    contents: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    files: BTreeMap<String, File>,
    /// Paths that are symlinks on the fake target (link -> where it points).
    symlinks: BTreeMap<String, String>,
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

    /// Places a file on the fake target (mode 0o644, owned by root).
    pub fn with_file(self, path: &str, contents: &[u8]) -> Self {
        self.with_file_owned(path, contents, 0o644, 0, 0)
    }

    /// Places a file with a mode and owner on the fake target.
    pub fn with_file_owned(
        self,
        path: &str,
        contents: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Self {
        self.state.lock().unwrap().files.insert(
            path.to_string(),
            File {
                contents: contents.to_vec(),
                mode,
                uid,
                gid,
            },
        );
        self
    }

    /// Makes `path` a symlink to `points_to` on the fake target: exact-path
    /// file calls through it are refused, as a real target refuses them.
    pub fn with_symlink(self, path: &str, points_to: &str) -> Self {
        self.state.lock().unwrap().symlinks.insert(
            path.trim_end_matches('/').to_string(),
            points_to.to_string(),
        );
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
        self.state
            .lock()
            .unwrap()
            .files
            .get(path)
            .map(|f| f.contents.clone())
    }

    /// The mode and owner of a file on the fake target.
    pub fn file_owner_and_mode(&self, path: &str) -> Option<(u32, u32, u32)> {
        self.state
            .lock()
            .unwrap()
            .files
            .get(path)
            .map(|f| (f.mode, f.uid, f.gid))
    }

    /// The first symlink among `path`'s directories (and `path` itself when
    /// `including_self`), for exact-path calls.
    fn symlink_on_the_way(&self, path: &str, including_self: bool) -> Option<RemoteError> {
        let state = self.state.lock().unwrap();
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let checked = if including_self {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        for part in &parts[..checked] {
            prefix.push('/');
            prefix.push_str(part);
            if let Some(points_to) = state.symlinks.get(&prefix) {
                return Some(RemoteError::Symlink {
                    target: self.name(),
                    path: path.to_string(),
                    detail: format!("{prefix} -> {points_to}"),
                });
            }
        }
        None
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
        // A real target stops reading at the limit and ends the command.
        if let Some(limit) = command.output_limit {
            if answer.stdout.len() + answer.stderr.len() > limit {
                return Err(RemoteError::TooLarge {
                    target: self.name(),
                    what: COMMAND_OUTPUT.into(),
                    limit,
                });
            }
        }
        Ok(answer)
    }

    fn write_file(&mut self, write: &FileWrite<'_>) -> Result<(), RemoteError> {
        self.log(Call::Write {
            path: write.path.to_string(),
            contents: write.contents.to_vec(),
            mode: write.mode,
        })?;
        if write.exact_path {
            if let Some(refused) = self.symlink_on_the_way(write.path, false) {
                return Err(refused);
            }
        }
        let mut state = self.state.lock().unwrap();
        state.symlinks.remove(write.path);
        let old = state.files.get(write.path).cloned();
        let keep =
            |new: Option<u32>, old: Option<u32>, default: u32| new.or(old).unwrap_or(default);
        let file = File {
            contents: write.contents.to_vec(),
            mode: keep(write.mode, old.as_ref().map(|f| f.mode), 0o644),
            uid: keep(write.uid, old.as_ref().map(|f| f.uid), 0),
            gid: keep(write.gid, old.as_ref().map(|f| f.gid), 0),
        };
        state.files.insert(write.path.to_string(), file);
        Ok(())
    }

    fn read_file(&mut self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        self.log(Call::Read(read.path.to_string()))?;
        if read.exact_path {
            if let Some(refused) = self.symlink_on_the_way(read.path, true) {
                return Err(refused);
            }
        }
        let contents = self
            .state
            .lock()
            .unwrap()
            .files
            .get(read.path)
            .map(|f| f.contents.clone());
        match (contents, read.max_bytes) {
            (Some(bytes), Some(limit)) if bytes.len() > limit => Err(RemoteError::TooLarge {
                target: self.name(),
                what: read.path.to_string(),
                limit,
            }),
            (contents, _) => Ok(contents),
        }
    }

    fn metadata(&mut self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        self.log(Call::Metadata(read.path.to_string()))?;
        if read.exact_path {
            if let Some(refused) = self.symlink_on_the_way(read.path, false) {
                return Err(refused);
            }
        }
        let state = self.state.lock().unwrap();
        if state.symlinks.contains_key(read.path) {
            return Ok(Some(FileMetadata {
                kind: FileKind::Symlink,
                size: 0,
                mode: 0o777,
                uid: 0,
                gid: 0,
            }));
        }
        Ok(state.files.get(read.path).map(|f| FileMetadata {
            kind: FileKind::Regular,
            size: f.contents.len() as u64,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
        }))
    }
}
