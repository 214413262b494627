//! The engines validators run on: one with wasmtime's pooling instance
//! allocator, where instantiation is cheap, and one allocating on demand,
//! for what the pool cannot take.
//!
//! Why a pool: a validator call instantiates a fresh component in a fresh
//! `Store`. Allocating on demand costs an `mmap`, `mprotect` and `munmap` of
//! linear memory per call, plus a page fault for every page the guest
//! touches; that was over half of the ~35 µs a call took (`perf`). The pool
//! keeps memory slots mapped between instances and, with `PAGEMAP_SCAN`
//! (Linux 6.7+), resets only the pages an instance dirtied back to the
//! module's initial image with `memset`/`memcpy`, leaving them resident: the
//! next instance of that type finds its pages mapped and takes no faults.
//! The reset is wasmtime's (the same one it relies on to keep tenants apart);
//! every call still gets a new instance whose memory, tables and globals
//! start from the module's initial state.
//!
//! The pool is a fixed set of slots, so it is never the only way to run:
//!
//! - No `PAGEMAP_SCAN` (older kernels, not Linux), a 32-bit host, or the
//!   pool's address-space reservation refused (`ulimit -v`): everything runs
//!   on demand, as before. Without `PAGEMAP_SCAN` a pool is no faster (it
//!   either `madvise`s memory away, so pages fault again, or `memset`s the
//!   whole kept region each time, which measured slower).
//! - A type whose memory limit is above the pool's slot size, or whose
//!   component exceeds the pool's per-component counts or sizes (wasmtime
//!   checks those when the component is loaded), runs on demand for good.
//! - More validator calls alive at once than the pool has component slots
//!   (`--forks` hosts × nesting depth): the call that finds the pool full
//!   instantiates on demand instead. See [`POOL_COMPONENT_SLOTS`] for why
//!   that is the only pool limit a call can run into, and why nothing of the
//!   component has run when it does.
//!
//! Both engines have the same compilation settings (the pool does not change
//! compiled code), so they share the compile cache and a component compiled
//! for one deserializes into the other.

use std::sync::OnceLock;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::grants::Limits;
use super::store::StoreState;
use super::HostError;

/// How many validator calls may hold a pool slot at once. Every call holds
/// one component instance for as long as it runs, including while its
/// nested blocks run, so this is `--forks` hosts × nesting depth at worst;
/// 1000 (wasmtime's default) covers e.g. 64 hosts 15 levels deep. Calls
/// beyond it run on demand, so the number bounds speed, not correctness.
///
/// The other pool totals are this times the per-component maxima below, so
/// that the component-instance count is always the first pool limit reached:
/// wasmtime checks it before it allocates or runs anything of the component
/// (`InstancePre::instantiate`), and frees a store's memories, tables and
/// core instances before it gives back the store's component slot. A call
/// that finds the pool full has therefore run no guest code, and retrying it
/// on the on-demand engine repeats nothing.
pub(super) const POOL_COMPONENT_SLOTS: u32 = 1000;
/// Core module instances one component may contain. The built-ins, Rust
/// `wasm32-wasip2` components, have 3 (their module and wit-component's
/// shims); these are counters, not reservations.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Linear memories one component may contain: Rust components have one.
/// Each memory slot reserves (but does not commit) 4 GiB of address space
/// plus a 32 MiB guard, so the pool reserves about 4 TiB of the 128 TiB a
/// 64-bit Linux process has; only the pages validators touch are committed.
/// A multi-memory component runs on demand.
const MAX_MEMORIES_PER_COMPONENT: u32 = 1;
/// Tables one component may contain: the built-ins have 2 (their module's
/// and the shims'). Each table slot reserves 800 KB of address space
/// ([`TABLE_ELEMENTS_LIMIT`] pointers), 3 GB for the pool.
const MAX_TABLES_PER_COMPONENT: u32 = 4;
/// The largest linear memory a pool slot holds: all of a 32-bit memory,
/// which is what every wasm32 component can address. A type declared with a
/// larger memory limit (only a 64-bit memory could use it) runs on demand,
/// so the pool never caps memory below the declared limit.
pub(super) const POOL_MAX_MEMORY_BYTES: u64 = 4 << 30;
/// The most elements a table may grow to; the store's limiter refuses more
/// on either engine, so a table behaves the same in and out of the pool.
pub(super) const TABLE_ELEMENTS_LIMIT: usize = 100_000;
/// Dirty memory (and table) bytes a free slot keeps resident and resets by
/// hand; beyond this a slot's pages are released to the kernel. Validators
/// touch far less; this bounds what idle slots hold.
const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// An engine and the linker of kiln's imports for it.
pub(super) struct Backend {
    pub(super) engine: Engine,
    pub(super) linker: Linker<StoreState>,
}

pub(super) struct Engines {
    pooled: Option<Backend>,
    on_demand: OnceLock<Result<Backend, String>>,
}

impl Engines {
    /// The pooled engine when this host supports it (with
    /// `pool_slots` component slots), else the on-demand one.
    pub(super) fn new(pool_slots: u32) -> Result<Engines, HostError> {
        let pooled = pooled_config(pool_slots).and_then(|config| backend(&config).ok());
        let engines = Engines {
            pooled,
            on_demand: OnceLock::new(),
        };
        if engines.pooled.is_none() {
            engines.on_demand().map_err(HostError)?;
        }
        Ok(engines)
    }

    /// The engine most types run on.
    pub(super) fn primary(&self) -> &Engine {
        match &self.pooled {
            Some(backend) => &backend.engine,
            None => &self.on_demand().expect("built in Engines::new").engine,
        }
    }

    pub(super) fn pooled(&self) -> Option<&Backend> {
        self.pooled.as_ref()
    }

    /// The on-demand engine, built the first time something needs it.
    pub(super) fn on_demand(&self) -> Result<&Backend, String> {
        self.on_demand
            .get_or_init(|| backend(&base_config()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether a type with these limits may run in the pool.
    pub(super) fn pool_fits(limits: &Limits) -> bool {
        limits.memory_bytes as u64 <= POOL_MAX_MEMORY_BYTES
    }

    /// Advances the epoch (the wall-clock limits' tick) of every engine.
    pub(super) fn increment_epochs(&self) {
        if let Some(backend) = &self.pooled {
            backend.engine.increment_epoch();
        }
        if let Some(Ok(backend)) = self.on_demand.get() {
            backend.engine.increment_epoch();
        }
    }
}

/// The settings both engines share; they decide the compiled code.
fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(1 << 20);
    config
}

fn pooled_config(slots: u32) -> Option<Config> {
    if !cfg!(target_pointer_width = "64") || !PoolingAllocationConfig::is_pagemap_scan_available() {
        return None;
    }
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .total_memories(slots.saturating_mul(MAX_MEMORIES_PER_COMPONENT))
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .total_tables(slots.saturating_mul(MAX_TABLES_PER_COMPONENT))
        .max_memory_size(usize::try_from(POOL_MAX_MEMORY_BYTES).ok()?)
        .table_elements(TABLE_ELEMENTS_LIMIT)
        // Async fiber stacks: kiln calls components synchronously, on the
        // calling thread's stack. The default (one guard-paged stack per
        // slot) costs a thousand `mprotect`s at start-up and as many
        // mappings.
        .total_stacks(0)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(wasmtime::Enabled::Yes);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Some(config)
}

fn backend(config: &Config) -> Result<Backend, String> {
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| e.to_string())?;
    bindings::ValidatorType::add_to_linker::<_, HasSelf<_>>(
        &mut linker,
        |state: &mut StoreState| state,
    )
    .map_err(|e| e.to_string())?;
    Ok(Backend { engine, linker })
}
