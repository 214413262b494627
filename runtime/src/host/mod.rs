//! The component host: loads validator types (built-in or third-party
//! `.wasm` components) through one code path, links their imports with the
//! grants they were given, caches compiled code, and runs `check` and `run`
//! in a fresh `Store` each time under hard limits (wall clock through epoch
//! interruption, memory through a resource limiter, log and output bytes
//! counted at the imports).

mod builtins;
mod cache;
mod engines;
pub mod grants;
mod store;
mod world;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, UpdateDeadline};

use crate::text::escape_controls;
pub use builtins::{builtin_declarations, BUILTIN_NAMES};
use engines::{Backend, Engines};
pub use grants::{Grant, Grants, Limits};
use store::StoreState;
pub use store::{human_bytes, human_duration, RunScope, Violation};
pub(crate) use world::bindings;
use world::{check_world_version, ContractLine, EXPORT_INTERFACE};
pub use world::{versions_compatible, WIT_VERSION};

pub use bindings::kiln::validator::types::{
    BlockShape, LogLevel, NestedBlock, Plan, ResourceRef, SpecError,
};
/// How often the epoch advances; wall-clock limits are checked this often.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Where a validator type's code comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// Embedded in kiln at build time.
    Builtin(&'static [u8]),
    /// A `.wasm` file.
    File(PathBuf),
}

/// A validator type as declared: by kiln for the built-ins, by a manifest,
/// `--validators DIR` or a config file for third-party ones.
#[derive(Debug, Clone)]
pub struct TypeDeclaration {
    pub name: String,
    pub source: ComponentSource,
    /// The expected SHA-256 of the `.wasm` file, lowercase hex.
    pub sha256: Option<String>,
    pub grants: Grants,
    pub limits: Limits,
    /// Whether it may replace a built-in type of the same name.
    pub overrides_builtin: bool,
}

/// Why a validator type could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("validator type `{name}`: cannot read {}: {source}", escape_controls(&path.to_string_lossy()))]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("validator type `{name}`: {path} has sha256 {actual}, but {expected} was declared; refusing to run it")]
    Checksum {
        name: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("validator type `{name}`: {what}")]
    NotAComponent { name: String, what: String },
    #[error("validator type `{name}` was built against kiln:validator@{found}; this kiln provides kiln:validator@{provided}{hint}")]
    IncompatibleVersion {
        name: String,
        found: String,
        provided: &'static str,
        hint: &'static str,
    },
    #[error("validator type `{name}` cannot be linked: {reason}")]
    Link { name: String, reason: String },
}

/// Why the host itself could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct HostError(String);

/// Options for the component host.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Where compiled components are kept between runs; `None` disables it.
    /// It is created 0700 when missing, and not used (see
    /// [`ComponentHost::cache_warning`]) when another user could write it.
    pub cache_dir: Option<PathBuf>,
}

impl HostOptions {
    /// The `components/` directory of kiln's cache root
    /// ([`crate::dirs::cache_root`]).
    pub fn with_default_cache() -> Self {
        let dir = crate::dirs::cache_root().map(|root| crate::dirs::components_dir(&root));
        HostOptions { cache_dir: dir }
    }
}

/// The engines, linkers and compile cache shared by every validator type.
pub struct ComponentHost {
    engines: Arc<Engines>,
    cache: cache::CompileCache,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for ComponentHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl ComponentHost {
    pub fn new(options: HostOptions) -> Result<Arc<ComponentHost>, HostError> {
        Self::with_pool_slots(options, engines::POOL_COMPONENT_SLOTS)
    }

    fn with_pool_slots(
        options: HostOptions,
        pool_slots: u32,
    ) -> Result<Arc<ComponentHost>, HostError> {
        let engines = Arc::new(Engines::new(pool_slots)?);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        start_epoch_ticker(engines.clone(), ticker_stop.clone());
        // Both engines compile alike, so one cache key serves them.
        let cache = cache::CompileCache::new(options.cache_dir, engines.primary());
        Ok(Arc::new(ComponentHost {
            engines,
            cache,
            ticker_stop,
        }))
    }

    /// Loads, checks and pre-links a validator type.
    pub fn load(&self, declaration: TypeDeclaration) -> Result<Arc<ValidatorType>, LoadError> {
        let name = declaration.name.clone();
        let (bytes, origin) = match &declaration.source {
            ComponentSource::Builtin(bytes) => {
                (std::borrow::Cow::Borrowed(*bytes), Origin::BuiltIn)
            }
            ComponentSource::File(path) => {
                let bytes = read_component_file(path).map_err(|source| LoadError::Read {
                    name: name.clone(),
                    path: path.clone(),
                    source,
                })?;
                (
                    std::borrow::Cow::Owned(bytes),
                    Origin::File(escape_controls(&path.to_string_lossy()).into_owned()),
                )
            }
        };
        let digest = hex(&Sha256::digest(&bytes));
        if let Some(expected) = &declaration.sha256 {
            if !expected.eq_ignore_ascii_case(&digest) {
                return Err(LoadError::Checksum {
                    name,
                    path: origin.to_string(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        check_component_header(&name, &origin, &bytes)?;
        let not_a_component = |e: wasmtime::Error| LoadError::NotAComponent {
            name: name.clone(),
            what: format!("{origin} is not a valid component: {e:#}"),
        };
        // The pool when the type fits it; wasmtime refuses a component that
        // exceeds the pool's per-component counts or sizes when it loads, and
        // such a component runs on demand (if it is valid at all, the
        // on-demand engine says why not).
        let in_pool = self
            .engines
            .pooled()
            .filter(|_| Engines::pool_fits(&declaration.limits))
            .and_then(|pooled| {
                let component = self.cache.component(&pooled.engine, &digest, &bytes).ok()?;
                Some((pooled, component))
            });
        let pooled = in_pool.is_some();
        let (backend, component) = match in_pool {
            Some(found) => found,
            None => {
                let backend = self
                    .engines
                    .on_demand()
                    .map_err(|e| not_a_component(wasmtime::Error::msg(e)))?;
                let component = self
                    .cache
                    .component(&backend.engine, &digest, &bytes)
                    .map_err(not_a_component)?;
                (backend, component)
            }
        };
        // One line of the contract today; a second one (0.2) makes this
        // pattern refutable, so the compiler points here to dispatch on it.
        let ContractLine::V0_1 = check_world_version(&name, &backend.engine, &component)?;
        let pre = prelink(&name, backend, &component)?;
        let fallback = OnceLock::new();
        Ok(Arc::new(ValidatorType {
            name: Arc::from(name.as_str()),
            grants: Arc::new(declaration.grants.clone()),
            limits: declaration.limits,
            origin,
            sha256: digest,
            declaration,
            engines: self.engines.clone(),
            placement: if pooled {
                Placement::Pooled {
                    pre,
                    component,
                    fallback,
                }
            } else {
                Placement::OnDemand { pre }
            },
        }))
    }

    /// Why the configured compile cache is not used (another user could
    /// write it, or it cannot be created), for the caller to print once;
    /// kiln then compiles every component on every run.
    pub fn cache_warning(&self) -> Option<&str> {
        self.cache.warning()
    }

    /// The engine most types run on (the pooled one where the host has it).
    pub fn engine(&self) -> &Engine {
        self.engines.primary()
    }
}

/// The largest `.wasm` kiln reads: far above any validator (the built-ins
/// are ~40 KB), far below what would strain the machine.
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Reads a component file: a regular file (a FIFO would block, a device
/// never end) of at most [`MAX_COMPONENT_BYTES`].
fn read_component_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > MAX_COMPONENT_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {} MiB; no validator component is that large",
            MAX_COMPONENT_BYTES >> 20
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Links `component`'s imports on `backend` and finds its exports.
fn prelink(
    name: &str,
    backend: &Backend,
    component: &Component,
) -> Result<bindings::ValidatorTypePre<StoreState>, LoadError> {
    let instance_pre = backend.linker.instantiate_pre(component).map_err(|e| LoadError::Link {
        name: name.to_string(),
        reason: format!("{e:#} (kiln gives validators only kiln:validator/host and WASI without files, sockets or environment)"),
    })?;
    bindings::ValidatorTypePre::new(instance_pre).map_err(|e| LoadError::Link {
        name: name.to_string(),
        reason: format!("it does not export {EXPORT_INTERFACE}@{WIT_VERSION} ({e:#}); is it built for the kiln:validator/validator-type world?"),
    })
}

fn start_epoch_ticker(engines: Arc<Engines>, stop: Arc<AtomicBool>) {
    thread::Builder::new()
        .name("kiln-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(EPOCH_TICK);
                engines.increment_epochs();
            }
        })
        .expect("spawning the epoch thread");
}

/// Tells apart the common wrong files before handing bytes to the compiler,
/// for a clearer message than a parse error.
fn check_component_header(name: &str, origin: &Origin, bytes: &[u8]) -> Result<(), LoadError> {
    let refuse = |what: String| {
        Err(LoadError::NotAComponent {
            name: name.to_string(),
            what,
        })
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return refuse(format!("{origin} is not a WebAssembly file"));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => refuse(format!(
            "{origin} is a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
        )),
        _ => refuse(format!("{origin} has an unknown WebAssembly version or layer")),
    }
}

/// Bytes as lowercase hexadecimal (digests in messages and cache names).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a loaded type's component came from: compiled into kiln, or a
/// `.wasm` file. Displayed as messages and `kiln explain` name it: `built
/// in`, or the file's path (escaped when the type was loaded, since a path
/// is data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built in"),
            Origin::File(path) => f.write_str(path),
        }
    }
}

/// A loaded validator type, ready to instantiate.
pub struct ValidatorType {
    pub name: Arc<str>,
    pub grants: Arc<Grants>,
    pub limits: Limits,
    /// Where its component came from.
    pub origin: Origin,
    pub sha256: String,
    pub declaration: TypeDeclaration,
    engines: Arc<Engines>,
    placement: Placement,
}

/// Which engine a type's calls instantiate on.
enum Placement {
    /// In the pool. `component` is kept to make `fallback`, the same type
    /// on the on-demand engine, the first time a call finds the pool full.
    Pooled {
        pre: bindings::ValidatorTypePre<StoreState>,
        component: Component,
        fallback: OnceLock<Result<bindings::ValidatorTypePre<StoreState>, String>>,
    },
    /// On demand: no pool on this host, or the type does not fit it.
    OnDemand {
        pre: bindings::ValidatorTypePre<StoreState>,
    },
}

impl std::fmt::Debug for ValidatorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorType")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .finish()
    }
}

/// How one call into a component ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The component returned.
    Returned(T),
    /// kiln stopped it (a limit) or it trapped (a panic, stack exhaustion).
    Stopped(String),
}

/// The result of one `run`.
#[derive(Debug)]
pub struct RunReport {
    pub outcome: Outcome<Result<(), String>>,
    /// What the run said it changed (`note-change`).
    pub changes: Vec<String>,
    /// Calls kiln refused (missing grants, undeclared blocks).
    pub denials: Vec<Violation>,
}

impl ValidatorType {
    /// Whether this type's calls instantiate from the pool.
    pub fn pooled(&self) -> bool {
        matches!(self.placement, Placement::Pooled { .. })
    }

    fn store(
        &self,
        engine: &Engine,
        scope: Option<Arc<dyn RunScope>>,
        test_only: bool,
    ) -> Store<StoreState> {
        let state = StoreState::new(
            self.name.clone(),
            self.grants.clone(),
            self.limits,
            scope,
            test_only,
        );
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            match context.data().deadline {
                Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
                // No limit of its own: check again in a second's worth of ticks.
                None => Ok(UpdateDeadline::Continue(100)),
                Some(_) => Ok(UpdateDeadline::Continue(1)),
            }
        });
        store
    }

    /// A fresh store and a fresh instance of the component in it: from the
    /// pool, or on demand when the type does not fit the pool or the pool
    /// is full (see `engines`).
    fn instantiate(
        &self,
        scope: Option<Arc<dyn RunScope>>,
        test_only: bool,
    ) -> (Store<StoreState>, wasmtime::Result<bindings::ValidatorType>) {
        let (pre, component, fallback) = match &self.placement {
            Placement::OnDemand { pre } => {
                let mut store = self.store(pre.engine(), scope, test_only);
                let instance = pre.instantiate(&mut store);
                return (store, instance);
            }
            Placement::Pooled {
                pre,
                component,
                fallback,
            } => (pre, component, fallback),
        };
        let mut store = self.store(pre.engine(), scope.clone(), test_only);
        let instance = pre.instantiate(&mut store);
        // The pool's component slots ran out before anything of the
        // component was allocated or ran: instantiate on demand instead.
        let full = instance
            .as_ref()
            .is_err_and(|e| e.downcast_ref::<PoolConcurrencyLimitError>().is_some());
        if !full {
            return (store, instance);
        }
        let fallback = fallback.get_or_init(|| {
            let backend = self.engines.on_demand()?;
            let bytes = component.serialize().map_err(|e| e.to_string())?;
            // SAFETY: the bytes are wasmtime's own serialization of a
            // component this process compiled or loaded, for an engine with
            // the same compilation settings; wasmtime checks the header
            // against the engine again.
            let component = unsafe { Component::deserialize(&backend.engine, &bytes) }
                .map_err(|e| e.to_string())?;
            prelink(&self.name, backend, &component).map_err(|e| e.to_string())
        });
        match fallback {
            Ok(pre) => {
                drop(store);
                let mut store = self.store(pre.engine(), scope, test_only);
                let instance = pre.instantiate(&mut store);
                (store, instance)
            }
            Err(why) => (
                store,
                Err(wasmtime::Error::msg(format!(
                    "the instance pool is full and the on-demand engine failed: {why}"
                ))),
            ),
        }
    }

    /// Calls `check` on a spec (JSON).
    /// The plan's summary and a spec error's message come from the
    /// component: they are returned with control characters escaped.
    pub fn check(&self, spec_json: &str) -> Outcome<Result<Plan, SpecError>> {
        let (mut store, instance) = self.instantiate(None, true);
        let result = instance.and_then(|instance| {
            instance
                .kiln_validator_validator()
                .call_check(&mut store, spec_json)
        });
        match result {
            Ok(returned) => Outcome::Returned(
                returned
                    .map(|mut plan| {
                        plan.summary = escape_controls(&plan.summary).into_owned();
                        plan
                    })
                    .map_err(|mut error| {
                        error.message = escape_controls(&error.message).into_owned();
                        error
                    }),
            ),
            Err(trap) => Outcome::Stopped(self.explain_trap(&store, &trap)),
        }
    }

    /// Calls `run` with `scope` as the way to the target.
    /// The error a run returns comes from the component: it is returned
    /// with control characters escaped.
    pub fn run(&self, spec_json: &str, test_only: bool, scope: Arc<dyn RunScope>) -> RunReport {
        let (mut store, instance) = self.instantiate(Some(scope), test_only);
        let result = instance.and_then(|instance| {
            instance
                .kiln_validator_validator()
                .call_run(&mut store, spec_json, test_only)
        });
        let outcome = match result {
            Ok(returned) => Outcome::Returned(
                returned.map_err(|message| escape_controls(&message).into_owned()),
            ),
            Err(trap) => Outcome::Stopped(self.explain_trap(&store, &trap)),
        };
        let state = store.into_data();
        let denials = state
            .violations
            .into_iter()
            .filter(|v| !v.is_limit())
            .collect();
        RunReport {
            outcome,
            changes: state.changes,
            denials,
        }
    }

    /// Names why a call trapped: a limit kiln enforced, or the component's
    /// own failure (with its last stderr line, where a panic message lands).
    fn explain_trap(&self, store: &Store<StoreState>, trap: &wasmtime::Error) -> String {
        let state = store.data();
        if let Some(limit) = state.violations.iter().rev().find(|v| v.is_limit()) {
            return limit.message(&self.name);
        }
        if state.memory.exceeded {
            return Violation::Memory {
                limit: self.limits.memory_bytes,
            }
            .message(&self.name);
        }
        let code = trap.downcast_ref::<wasmtime::Trap>();
        if code == Some(&wasmtime::Trap::Interrupt) {
            return Violation::WallClock {
                limit: self.limits.wall_clock.unwrap_or_default(),
            }
            .message(&self.name);
        }
        // Output past the limit is refused, which a guest sees as a closed
        // stream; a trap that follows (println! panics) is the limit's doing.
        if state.filled_output() {
            return Violation::Log {
                limit: self.limits.log_bytes,
            }
            .message(&self.name);
        }
        if code == Some(&wasmtime::Trap::StackOverflow) {
            return format!(
                "validator type `{}` crashed: it exhausted its stack",
                self.name
            );
        }
        let detail = state
            .last_stderr_line()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        format!(
            "validator type `{}` crashed: {}{detail}",
            self.name,
            escape_controls(&root_cause(trap))
        )
    }
}

fn root_cause(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{DefaultHasher, Hash, Hasher};
    use std::sync::Mutex;

    use super::*;
    use crate::remote::scripted::ScriptedRemote;
    use crate::remote::{
        CommandOutput, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
    };

    fn package(host: &ComponentHost, limits: Limits) -> Arc<ValidatorType> {
        let mut declaration = builtin_declarations()
            .into_iter()
            .find(|d| d.name == "package")
            .unwrap();
        declaration.limits = limits;
        host.load(declaration).expect("package loads")
    }

    /// Answers every command like the scripted target; the first command
    /// also runs `inner` (a second `package` call) while the outer call
    /// still holds its instance.
    struct Scope {
        inner: Mutex<Option<Arc<ValidatorType>>>,
        inner_outcome: Mutex<Option<String>>,
    }

    impl RunScope for Scope {
        fn distro(&self) -> String {
            "debian".into()
        }
        fn run_command(&self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
            if let Some(inner) = self.inner.lock().unwrap().take() {
                let scope = Arc::new(Scope {
                    inner: Mutex::new(None),
                    inner_outcome: Mutex::new(None),
                });
                let report = inner.run(r#"["less"]"#, true, scope);
                *self.inner_outcome.lock().unwrap() = Some(format!("{:?}", report.outcome));
            }
            ScriptedRemote::new("debian").run(command)
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
        fn read_resource(
            &self,
            _: &str,
            _: usize,
        ) -> Result<Vec<u8>, crate::manifest::resources::ResourceReadError> {
            Err(crate::manifest::resources::ResourceReadError::Failed(
                "none".into(),
            ))
        }
        fn get_argument(&self, _: &str) -> Option<String> {
            None
        }
        fn set_argument(&self, _: &str, _: &str) {}
        fn run_nested(&self, _: u32, _: bool) -> Result<(), String> {
            Err("none".into())
        }
        fn nested_count(&self) -> usize {
            0
        }
        fn log(&self, _: LogLevel, _: &str) {}
    }

    fn pool_available() -> bool {
        ComponentHost::new(HostOptions::default())
            .unwrap()
            .engines
            .pooled()
            .is_some()
    }

    #[test]
    fn builtins_run_from_the_pool_where_there_is_one() {
        let host = ComponentHost::new(HostOptions::default()).unwrap();
        let pooled = host.engines.pooled().is_some();
        for declaration in builtin_declarations() {
            let name = declaration.name.clone();
            let loaded = host.load(declaration).unwrap();
            assert_eq!(loaded.pooled(), pooled, "{name}");
        }
    }

    #[test]
    fn a_full_pool_falls_back_to_on_demand() {
        // One slot: the outer call holds it while the inner one runs.
        let host = ComponentHost::with_pool_slots(HostOptions::default(), 1).unwrap();
        let outer = package(&host, Limits::BUILTIN);
        let scope = Arc::new(Scope {
            inner: Mutex::new(Some(outer.clone())),
            inner_outcome: Mutex::new(None),
        });
        let report = outer.run(r#"["less"]"#, true, scope.clone());
        assert!(
            matches!(report.outcome, Outcome::Returned(Ok(()))),
            "{:?}",
            report.outcome
        );
        assert_eq!(
            scope.inner_outcome.lock().unwrap().as_deref(),
            Some("Returned(Ok(()))")
        );
        if let Placement::Pooled { fallback, .. } = &outer.placement {
            assert!(
                fallback.get().is_some_and(|f| f.is_ok()),
                "the inner call ran on demand"
            );
        }
        // The slot is free again: the next call runs (from the pool).
        let report = outer.run(
            r#"["less"]"#,
            true,
            Arc::new(Scope {
                inner: Mutex::new(None),
                inner_outcome: Mutex::new(None),
            }),
        );
        assert!(matches!(report.outcome, Outcome::Returned(Ok(()))));
    }

    #[test]
    fn a_memory_limit_above_the_pool_slot_runs_on_demand() {
        let host = ComponentHost::new(HostOptions::default()).unwrap();
        let mut limits = Limits::THIRD_PARTY;
        limits.memory_bytes = (engines::POOL_MAX_MEMORY_BYTES as usize) + (1 << 20);
        let big = package(&host, limits);
        assert!(!big.pooled());
        assert!(matches!(big.check(r#"["less"]"#), Outcome::Returned(Ok(_))));
        assert_eq!(
            package(&host, Limits::THIRD_PARTY).pooled(),
            pool_available()
        );
    }

    #[test]
    fn both_engines_compile_alike() {
        // The compile cache and the pool-full fallback rely on this.
        let engines = Engines::new(engines::POOL_COMPONENT_SLOTS).unwrap();
        let hash = |engine: &Engine| {
            let mut hasher = DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            hasher.finish()
        };
        let on_demand = hash(&engines.on_demand().unwrap().engine);
        assert_eq!(hash(engines.primary()), on_demand);
    }
}
