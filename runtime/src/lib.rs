//! kiln: pack and check machine images and live hosts from one declarative
//! manifest, with every validator type running as a sandboxed WebAssembly
//! component.
//!
//! The crate is laid out along the path a run takes:
//! - [`manifest`] reads a manifest (YAML with positions) into arguments and a
//!   tree of validator nodes, reporting every spec error as FILE:LINE:COL;
//! - [`host`] loads validator components, links their imports with grants and
//!   limits, and caches compiled code;
//! - [`interpreter`] runs the tree against a [`remote::Remote`];
//! - [`remote`] is everything on the far side of that trait: the trait and
//!   its value types, shell quoting, distro families and os-release, and
//!   each kind of remote (disk images through libguestfs, hosts over SSH,
//!   the in-memory scripted remote that pins exact semantics);
//! - [`inventory`] reads the host lists fleets are kept in (plain, Ansible
//!   INI and YAML);
//! - [`yaml`] is the one YAML reader, keeping every node's position and
//!   bounding what a document may make kiln hold;
//! - [`interrupt`] turns Ctrl-C and SIGTERM into an orderly stop at safe
//!   points (the signal only sets a flag and ends child processes);
//! - [`text`] makes untrusted text (component output, command output, file
//!   names) safe to print: control characters become visible escapes;
//! - [`dirs`] says where kiln's one cache root is;
//! - [`api`] offers the three operations Sahara plugins had: the arguments a
//!   plugin version takes, pack an image, validate instances.

pub mod api;
pub mod dirs;
pub mod host;
pub mod interpreter;
pub mod interrupt;
pub mod inventory;
pub mod manifest;
pub mod remote;
pub mod text;
pub mod yaml;

pub use api::Kiln;
