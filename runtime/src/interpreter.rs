//! The interpreter: runs a loaded manifest against a [`Remote`] with Sahara's
//! semantics. It resolves the arguments (required, defaults, choices), asks
//! the target for its distro once, then runs the root `all` node. Each node
//! runs in its validator type's component; flow-control types call back
//! here (through [`RunScope`]) to run their nested blocks.
//!
//! When a run fails, the error names the innermost validator whose failure
//! ended it, with its manifest position, not the `all` that carried it up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::host::{LogLevel, Outcome, RunScope};
use crate::manifest::resources::ResourceReadError;
use crate::manifest::{Block, Location, Manifest, ResourceRoots, ValidatorNode};
use crate::remote::{
    CommandOutput, FileMetadata, FileRead, FileWrite, OutputSink, OutputStream, Remote,
    RemoteCommand, RemoteError, SCRIPT_UPLOAD_PREFIX,
};
use crate::text::escape_controls;

/// Stack for the thread that runs a manifest: every nesting level of flow
/// control is a wasm call with host calls inside it.
const RUN_STACK_BYTES: usize = 64 << 20;

/// The most validator runs one run may start. Each flow-control call may
/// re-run a nested block only a few times (`nested_reruns`), but re-runs
/// multiply with nesting depth; this bounds the records a run keeps and the
/// time it can take at a number no real manifest comes near (Sahara's
/// largest run a few hundred).
pub const MAX_NODE_RUNS: usize = 50_000;

/// A validator that failed, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} ({location}): {message}")]
pub struct ValidationError {
    pub path: String,
    pub type_name: String,
    pub location: Location,
    pub message: String,
}

/// Why a run did not pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The arguments given do not fit the manifest (Sahara's messages).
    #[error("{0}")]
    Arguments(String),
    /// The target could not say what it runs.
    #[error("cannot detect the distro: {0}")]
    Distro(String),
    #[error("{0}")]
    Validation(ValidationError),
    /// The target went away mid-run (a host that dropped, an appliance
    /// that died); the validator it happened in is named.
    #[error("the target became unreachable during {validator}: {message}")]
    Unreachable { validator: String, message: String },
}

/// What happened to one validator run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Passed without changing anything.
    InPlace,
    /// Passed and changed the target (what it said it changed).
    Changed(Vec<String>),
    Failed(String),
}

/// One finished validator run.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub path: String,
    pub type_name: String,
    pub summary: String,
    pub flow_control: bool,
    pub test_only: bool,
    pub status: Status,
    pub elapsed: Duration,
}

/// What a run reports as it goes.
pub enum Event<'a> {
    Started {
        node: &'a ValidatorNode,
        test_only: bool,
        at: Duration,
    },
    Finished {
        record: &'a NodeRecord,
        at: Duration,
    },
    /// A command is about to run.
    CommandStarted {
        node: &'a ValidatorNode,
        command: &'a RemoteCommand,
    },
    /// Output of the running command, as the target hands it over: while
    /// it runs (SSH) or once it ended (disk image). Raw bytes, any chunk.
    Output {
        node: &'a ValidatorNode,
        stream: OutputStream,
        bytes: &'a [u8],
    },
    Command {
        node: &'a ValidatorNode,
        command: &'a RemoteCommand,
        result: &'a Result<CommandOutput, RemoteError>,
        elapsed: Duration,
    },
    Log {
        node: &'a ValidatorNode,
        level: LogLevel,
        message: &'a str,
    },
}

/// Receives a run's events (progress lines, reports).
pub trait Observer: Send {
    fn event(&mut self, event: Event<'_>);

    /// Whether it wants [`Event::Output`], a command's output as it
    /// arrives. Streaming costs every command a sink and, over SSH, an
    /// unbuffered cap on the target, so runs nobody watches that closely
    /// do without.
    fn wants_output(&self) -> bool {
        false
    }
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event<'_>) {}
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub outcome: Result<(), RunError>,
    /// Every validator run, in the order they finished.
    pub records: Vec<NodeRecord>,
    /// The arguments as they stood at the end (after `argument_set` and `output`).
    pub arguments: BTreeMap<String, String>,
    pub distro: Option<String>,
    /// Commands sent to the target (round trips).
    pub commands: usize,
    pub elapsed: Duration,
}

impl RunSummary {
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The last record of each leaf validator, in manifest order of first run.
    pub fn leaf_results(&self) -> Vec<&NodeRecord> {
        let mut order: Vec<&str> = Vec::new();
        let mut last: BTreeMap<&str, &NodeRecord> = BTreeMap::new();
        for record in self.records.iter().filter(|r| !r.flow_control) {
            if !last.contains_key(record.path.as_str()) {
                order.push(&record.path);
            }
            last.insert(&record.path, record);
        }
        order.into_iter().map(|p| last[p]).collect()
    }
}

/// Checks the given values against the declared arguments, Sahara's way:
/// a missing required one is an error, a missing optional one takes its
/// default, a value outside the choices is an error. Values for undeclared
/// names are not passed on.
pub fn resolve_arguments(
    manifest: &Manifest,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, RunError> {
    let mut values = BTreeMap::new();
    for argument in &manifest.arguments {
        let given_value = given.get(&argument.name);
        if let (Some(value), Some(fixed)) = (given_value, manifest.fixed_value(&argument.name)) {
            if *value != fixed.value {
                return Err(RunError::Arguments(format!(
                    "Argument {} is fixed to `{}` for this plugin version by {} (got `{value}`); leave it out, or name the shared manifest {} to choose",
                    argument.name,
                    fixed.value,
                    fixed.location,
                    manifest.path.display()
                )));
            }
        }
        // A version entry's values are already the arguments' defaults.
        let value = match (given_value, &argument.default) {
            (Some(value), _) => value.clone(),
            (None, _) if argument.required => {
                return Err(RunError::Arguments(format!(
                    "Argument {} is required for image processing",
                    argument.name
                )))
            }
            (None, Some(default)) => default.clone(),
            (None, None) => continue,
        };
        if !argument.allows(&value) {
            return Err(RunError::Arguments(format!(
                "Value for argument {} must be one of {} (got `{value}`)",
                argument.name,
                argument.choices.join(", ")
            )));
        }
        values.insert(argument.name.clone(), value);
    }
    Ok(values)
}

/// Runs `manifest` against `remote`, reconciling unless `test_only`, and
/// hands the remote back (a disk image must be committed or discarded).
pub fn run<R: Remote + 'static>(
    manifest: &Manifest,
    remote: R,
    given: &BTreeMap<String, String>,
    test_only: bool,
    observer: Box<dyn Observer>,
) -> (RunSummary, R) {
    let started = Instant::now();
    let streams_output = observer.wants_output();
    // Streaming output runs each command on a channel of its own, which
    // cannot carry the upload too.
    let joins_uploads = remote.joins_upload_and_run() && !streams_output;
    let session = Arc::new(Session {
        target: Mutex::new(Target {
            remote,
            calls: 0,
            lost: None,
        }),
        arguments: Mutex::new(BTreeMap::new()),
        resources: manifest.resources.clone(),
        observer: Arc::new(Mutex::new(observer)),
        streams_output,
        joins_uploads,
        records: Mutex::new(Vec::new()),
        node_runs: std::sync::atomic::AtomicUsize::new(0),
        started,
    });
    let outcome = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("kiln-run".into())
            .stack_size(RUN_STACK_BYTES)
            .spawn_scoped(scope, || run_root(&session, manifest, given, test_only))
            .expect("spawning the run thread")
            .join()
            .unwrap_or_else(|_| {
                Err(RunError::Arguments(
                    "internal error: the run thread panicked".into(),
                ))
            })
    });
    let session =
        Arc::try_unwrap(session).unwrap_or_else(|_| panic!("a validator scope outlived its run"));
    let arguments = session.arguments.into_inner().unwrap();
    let target = session.target.into_inner().unwrap();
    let summary = RunSummary {
        outcome,
        records: session.records.into_inner().unwrap(),
        distro: arguments.get("distro").cloned(),
        arguments,
        commands: target.calls,
        elapsed: started.elapsed(),
    };
    (summary, target.remote)
}

fn run_root<R: Remote + 'static>(
    session: &Arc<Session<R>>,
    manifest: &Manifest,
    given: &BTreeMap<String, String>,
    test_only: bool,
) -> Result<(), RunError> {
    let mut values = resolve_arguments(manifest, given)?;
    let distro = session
        .target
        .lock()
        .unwrap()
        .remote
        .distro()
        .map_err(|e| RunError::Distro(e.to_string()))?;
    values.insert("distro".into(), distro);
    *session.arguments.lock().unwrap() = values;
    let result = run_node(session, &manifest.root, test_only);
    let lost = session.target.lock().unwrap().lost.take();
    if let Some(message) = lost {
        let validator = match &result {
            Err(error) => error.path.clone(),
            Ok(()) => manifest.root.path.clone(),
        };
        return Err(RunError::Unreachable { validator, message });
    }
    result.map_err(RunError::Validation)
}

/// The state one run shares between its validators.
struct Session<R> {
    target: Mutex<Target<R>>,
    arguments: Mutex<BTreeMap<String, String>>,
    resources: Arc<ResourceRoots>,
    /// Shared with the output sinks of running commands, which report
    /// from the target's reader threads.
    observer: Arc<Mutex<Box<dyn Observer>>>,
    /// The observer's [`Observer::wants_output`], asked once per run.
    streams_output: bool,
    /// A script upload is held for the run that follows it (see
    /// [`Remote::joins_upload_and_run`]).
    joins_uploads: bool,
    records: Mutex<Vec<NodeRecord>>,
    /// Validator runs started so far, against [`MAX_NODE_RUNS`].
    node_runs: std::sync::atomic::AtomicUsize,
    started: Instant,
}

/// The remote and what the run knows about it, behind one lock: a call
/// holds it from the check to the result.
struct Target<R> {
    remote: R,
    /// Calls that reached the remote.
    calls: usize,
    /// Set when the target became unreachable: later calls fail at once
    /// instead of waiting on a dead connection again.
    lost: Option<String>,
}

impl<R: Remote> Session<R> {
    fn emit(&self, event: Event<'_>) {
        self.observer.lock().unwrap().event(event);
    }

    /// One call to the target: counted, and remembered when it shows the
    /// target is gone.
    fn call<T>(
        &self,
        call: impl FnOnce(&mut R) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let mut target = self.target.lock().unwrap();
        if let Some(message) = &target.lost {
            return Err(RemoteError::Unreachable {
                target: target.remote.name(),
                reason: message.clone(),
            });
        }
        // After Ctrl-C (or --timeout) nothing new reaches the target.
        if let Some(stop) = crate::interrupt::requested() {
            return Err(RemoteError::Failed {
                target: target.remote.name(),
                message: stop.to_string(),
            });
        }
        target.calls += 1;
        let result = call(&mut target.remote);
        if let Err(RemoteError::Unreachable { reason, .. }) = &result {
            target.lost = Some(reason.clone());
        }
        result
    }
}

fn run_node<R: Remote + 'static>(
    session: &Arc<Session<R>>,
    node: &Arc<ValidatorNode>,
    test_only: bool,
) -> Result<(), ValidationError> {
    let runs = session
        .node_runs
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    // After Ctrl-C no validator starts (see `crate::interrupt`).
    if let Some(stop) = crate::interrupt::requested() {
        return Err(ValidationError {
            path: node.path.clone(),
            type_name: node.type_name.clone(),
            location: node.location.clone(),
            message: stop.to_string(),
        });
    }
    if runs > MAX_NODE_RUNS {
        return Err(ValidationError {
            path: node.path.clone(),
            type_name: node.type_name.clone(),
            location: node.location.clone(),
            message: format!("the run has started {MAX_NODE_RUNS} validators and stops here; no manifest needs that many (is a flow-control type re-running its blocks?)"),
        });
    }
    let started = Instant::now();
    // Records pushed while this node runs are its descendants' runs.
    let first_descendant = session.records.lock().unwrap().len();
    session.emit(Event::Started {
        node,
        test_only,
        at: session.started.elapsed(),
    });
    let scope = Arc::new(NodeScope {
        session: session.clone(),
        node: node.clone(),
        child_failure: Mutex::new(None),
        pending_upload: Mutex::new(None),
    });
    let mut report = node.vtype.run(&node.spec_json, test_only, scope.clone());
    // An upload the component never ran still reaches the target.
    if let (Err(error), Outcome::Returned(Ok(()))) = (scope.flush_upload(), &report.outcome) {
        report.outcome = Outcome::Returned(Err(escape_controls(&error.to_string()).into_owned()));
    }
    let child_failure = scope.child_failure.lock().unwrap().take();
    let failure = |message: String| ValidationError {
        path: node.path.clone(),
        type_name: node.type_name.clone(),
        location: node.location.clone(),
        message,
    };
    let result = match (report.outcome, report.denials.first()) {
        // A limit stopped it: that is the story.
        (Outcome::Stopped(reason), _) => Err(failure(reason)),
        // It was refused something: whatever it returned, the refusal is
        // what the user needs to see (a type that claims success after a
        // refusal did not do what its spec said).
        (_, Some(denial)) => Err(failure(denial.message(&node.type_name))),
        (Outcome::Returned(Ok(())), None) => Ok(()),
        (Outcome::Returned(Err(message)), None) => match child_failure {
            // A flow-control type passing its child's failure up unchanged:
            // report the child, which says where the problem really is.
            Some(child) if message == child_message(&child) => Err(child),
            _ => Err(failure(message)),
        },
    };
    // A flow-control node changed the target when anything nested in it
    // did: its status says so, naming what changed below it.
    let mut changes = report.changes;
    for record in &session.records.lock().unwrap()[first_descendant..] {
        if let (Status::Changed(what), false) = (&record.status, record.flow_control) {
            changes.push(format!("{}: {}", record.path, what.join("; ")));
        }
    }
    let status = match &result {
        Ok(()) if changes.is_empty() => Status::InPlace,
        Ok(()) => Status::Changed(changes),
        Err(e) => Status::Failed(e.message.clone()),
    };
    let record = NodeRecord {
        path: node.path.clone(),
        type_name: node.type_name.clone(),
        summary: node.summary.clone(),
        flow_control: node.is_flow_control(),
        test_only,
        status,
        elapsed: started.elapsed(),
    };
    session.emit(Event::Finished {
        record: &record,
        at: session.started.elapsed(),
    });
    session.records.lock().unwrap().push(record);
    result
}

/// How a child's failure reads to the flow-control type above it.
fn child_message(child: &ValidationError) -> String {
    format!("{}: {}", child.path, child.message)
}

/// The view of the run one node's component gets.
struct NodeScope<R> {
    session: Arc<Session<R>>,
    node: Arc<ValidatorNode>,
    /// The failure of the last nested block that failed.
    child_failure: Mutex<Option<ValidationError>>,
    /// A script upload not yet sent: the `script` type writes its file and
    /// runs it next, and on a target that joins them
    /// [`Remote::write_and_run`] does both in one trip. Any other call, and
    /// the node's end, sends it first on its own; its failure is then that
    /// call's (or the node's).
    pending_upload: Mutex<Option<PendingUpload>>,
}

/// A [`FileWrite`] held by [`NodeScope`] until the node's next call.
struct PendingUpload {
    path: String,
    contents: Vec<u8>,
    write: FileWrite<'static>,
}

impl PendingUpload {
    fn new(write: &FileWrite<'_>) -> Self {
        PendingUpload {
            path: write.path.to_string(),
            contents: write.contents.to_vec(),
            write: FileWrite {
                path: "",
                contents: &[],
                ..*write
            },
        }
    }

    fn write(&self) -> FileWrite<'_> {
        FileWrite {
            path: &self.path,
            contents: &self.contents,
            ..self.write
        }
    }
}

impl<R: Remote + 'static> NodeScope<R> {
    /// Sends a held script upload on its own, before any other call.
    fn flush_upload(&self) -> Result<(), RemoteError> {
        match self.pending_upload.lock().unwrap().take() {
            Some(upload) => self
                .session
                .call(|remote| remote.write_file(&upload.write())),
            None => Ok(()),
        }
    }

    /// Runs `command` with its output handed to the observer as it arrives.
    fn run_streaming(&self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        // A reader thread that outlives a timed-out command must not report
        // after its end.
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sink = {
            let observer = self.session.observer.clone();
            let (node, open) = (self.node.clone(), open.clone());
            OutputSink::new(move |stream, bytes| {
                if open.load(std::sync::atomic::Ordering::SeqCst) {
                    observer.lock().unwrap().event(Event::Output {
                        node: &node,
                        stream,
                        bytes,
                    });
                }
            })
        };
        let result = self
            .session
            .call(|remote| remote.run_streaming(command, &sink));
        open.store(false, std::sync::atomic::Ordering::SeqCst);
        result
    }

    fn run_block(&self, block: &Block, test_only: bool) -> Result<(), ValidationError> {
        match block {
            Block::Single(node) => run_node(&self.session, node, test_only),
            Block::Sequence { nodes, .. } => nodes
                .iter()
                .try_for_each(|node| run_node(&self.session, node, test_only)),
        }
    }
}

impl<R: Remote + 'static> RunScope for NodeScope<R> {
    fn distro(&self) -> String {
        self.session
            .arguments
            .lock()
            .unwrap()
            .get("distro")
            .cloned()
            .unwrap_or_default()
    }

    fn run_command(&self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        self.session.emit(Event::CommandStarted {
            node: &self.node,
            command,
        });
        let started = Instant::now();
        let upload = self.pending_upload.lock().unwrap().take();
        let result = match upload {
            Some(upload) => self
                .session
                .call(|remote| remote.write_and_run(&upload.write(), command)),
            None if self.session.streams_output => self.run_streaming(command),
            None => self.session.call(|remote| remote.run(command)),
        };
        self.session.emit(Event::Command {
            node: &self.node,
            command,
            result: &result,
            elapsed: started.elapsed(),
        });
        result
    }

    fn write_file(&self, write: &FileWrite<'_>) -> Result<(), RemoteError> {
        self.flush_upload()?;
        if self.session.joins_uploads && write.path.starts_with(SCRIPT_UPLOAD_PREFIX) {
            *self.pending_upload.lock().unwrap() = Some(PendingUpload::new(write));
            return Ok(());
        }
        self.session.call(|remote| remote.write_file(write))
    }

    fn read_file(&self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        self.flush_upload()?;
        self.session.call(|remote| remote.read_file(read))
    }

    fn file_metadata(&self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        self.flush_upload()?;
        self.session.call(|remote| remote.metadata(read))
    }

    fn read_resource(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, ResourceReadError> {
        self.session.resources.read_limited(path, max_bytes)
    }

    fn get_argument(&self, name: &str) -> Option<String> {
        self.session.arguments.lock().unwrap().get(name).cloned()
    }

    fn set_argument(&self, name: &str, value: &str) {
        self.session
            .arguments
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    fn run_nested(&self, index: u32, test_only: bool) -> Result<(), String> {
        self.flush_upload()
            .map_err(|error| escape_controls(&error.to_string()).into_owned())?;
        let block = &self.node.blocks[index as usize];
        self.run_block(block, test_only).map_err(|child| {
            let message = child_message(&child);
            *self.child_failure.lock().unwrap() = Some(child);
            message
        })
    }

    fn nested_count(&self) -> usize {
        self.node.blocks.len()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.session.emit(Event::Log {
            node: &self.node,
            level,
            message,
        });
    }
}
