//! The manifest model and its loader. A manifest is Sahara's YAML image
//! specification: typed `arguments` and an ordered tree of `validators`,
//! plus kiln's `validator_types` for third-party types. Loading reads the
//! YAML with positions, checks the arguments, asks each node's validator
//! type to `check` its spec (which also names its nested blocks and the
//! resources it needs), and resolves those resources, so every spec error is
//! reported as `FILE:LINE:COL: validators[i]...: what is wrong` before
//! anything touches a target.

mod arguments;
mod declarations;
pub mod resources;
pub mod version_entry;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::yaml::{self, Mark, Yaml, YamlKind, YamlLimits};
pub use arguments::Argument;
pub use declarations::{validator_dir, LimitSettings};
pub use resources::ResourceRoots;
pub use version_entry::{ValueKind, VersionEntry, VersionValue};

use crate::host::{
    self, BlockShape, ComponentHost, LoadError, Outcome, TypeDeclaration, ValidatorType,
};
use crate::text::escape_controls;

/// A place in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub mark: Mark,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A file name is data: a crafted one must not reach the terminal raw.
        write!(
            f,
            "{}:{}:{}",
            escape_controls(&self.file.to_string_lossy()),
            self.mark.line,
            self.mark.col
        )
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read the manifest: {source}", escape_controls(&path.to_string_lossy()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Spec { location: Location, message: String },
    #[error("{0}")]
    Type(#[from] LoadError),
}

impl ManifestError {
    /// The position of the error, when it has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ManifestError::Spec { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// A loaded, checked manifest.
#[derive(Debug)]
pub struct Manifest {
    pub path: PathBuf,
    pub arguments: Vec<Argument>,
    /// The top-level `validators` list, as one `all` node.
    pub root: Arc<ValidatorNode>,
    pub resources: Arc<ResourceRoots>,
    pub types: TypeRegistry,
    /// Where each type of the manifest's own `validator_types` is declared
    /// (the mark of its name), for messages about a declaration that
    /// loaded, such as `kiln lint`'s warnings.
    pub declared_at: BTreeMap<String, Location>,
    /// The version entry this manifest was loaded through, whose values are
    /// already the arguments' defaults (see [`version_entry`]).
    pub version: Option<VersionEntry>,
}

impl Manifest {
    pub fn argument(&self, name: &str) -> Option<&Argument> {
        self.arguments.iter().find(|a| a.name == name)
    }

    /// The value a version entry fixes for `argument` (`set:`), if any.
    pub fn fixed_value(&self, argument: &str) -> Option<&VersionValue> {
        self.version.as_ref()?.fixed(argument)
    }
}

/// One validator in the tree, checked and bound to its type.
#[derive(Debug)]
pub struct ValidatorNode {
    pub type_name: String,
    /// Where it stands in the manifest: `validators[2].os_case[0].redhat[1].package`.
    pub path: String,
    pub location: Location,
    /// The spec as JSON, as the component receives it.
    pub spec_json: String,
    /// The type's one-line description of this spec.
    pub summary: String,
    pub blocks: Vec<Block>,
    pub vtype: Arc<ValidatorType>,
}

/// A nested block of a flow-control node.
#[derive(Debug)]
pub enum Block {
    /// Validators run in order, as `all`.
    Sequence {
        label: String,
        nodes: Vec<Arc<ValidatorNode>>,
    },
    /// One validator.
    Single(Arc<ValidatorNode>),
}

impl ValidatorNode {
    /// Every node below this one, depth first, with its depth.
    pub fn walk(self: &Arc<Self>, visit: &mut dyn FnMut(&Arc<ValidatorNode>, usize)) {
        fn go(
            node: &Arc<ValidatorNode>,
            depth: usize,
            visit: &mut dyn FnMut(&Arc<ValidatorNode>, usize),
        ) {
            visit(node, depth);
            for block in &node.blocks {
                match block {
                    Block::Sequence { nodes, .. } => {
                        nodes.iter().for_each(|n| go(n, depth + 1, visit))
                    }
                    Block::Single(n) => go(n, depth + 1, visit),
                }
            }
        }
        go(self, 0, visit)
    }

    /// Whether this node runs other validators rather than acting itself.
    pub fn is_flow_control(&self) -> bool {
        !self.blocks.is_empty() || self.vtype.grants.allows(host::Grant::Nested)
    }
}

/// The validator types a manifest may use, by name.
#[derive(Debug, Clone, Default)]
pub struct TypeRegistry {
    types: BTreeMap<String, Arc<ValidatorType>>,
}

impl TypeRegistry {
    /// The built-in types.
    pub fn builtins(host: &ComponentHost) -> Result<TypeRegistry, LoadError> {
        let mut registry = TypeRegistry::default();
        for declaration in host::builtin_declarations() {
            let vtype = host.load(declaration)?;
            registry.types.insert(vtype.name.to_string(), vtype);
        }
        Ok(registry)
    }

    /// Adds a third-party type. A name that clashes with a built-in is
    /// refused unless the declaration says it overrides it.
    pub fn add(
        &mut self,
        host: &ComponentHost,
        declaration: TypeDeclaration,
    ) -> Result<(), String> {
        let name = declaration.name.clone();
        let is_builtin = host::BUILTIN_NAMES.contains(&name.as_str());
        if is_builtin && !declaration.overrides_builtin {
            return Err(format!(
                "validator type `{name}` clashes with the built-in type of that name; rename it, or set `overrides: true` to replace the built-in"
            ));
        }
        if let Some(existing) = self.types.get(&name) {
            if !is_builtin
                && existing.origin != host::Origin::BuiltIn
                && !declaration.overrides_builtin
            {
                return Err(format!(
                    "validator type `{name}` is declared twice ({} and the new one)",
                    existing.origin
                ));
            }
        }
        let vtype = host.load(declaration).map_err(|e| e.to_string())?;
        self.types.insert(name, vtype);
        Ok(())
    }

    /// Changes the limits of a type it has (a built-in included), keeping
    /// its component and grants: `[kiln_limits]` in a config file, and a
    /// manifest's limits-only declaration.
    pub fn set_limits(
        &mut self,
        host: &ComponentHost,
        name: &str,
        limits: &LimitSettings,
    ) -> Result<(), String> {
        let Some(existing) = self.types.get(name) else {
            return Err(format!(
                "validator type `{name}` is neither built in nor declared, so it has no limits to change (types: {}); a new type needs `wasm: PATH`",
                self.names().collect::<Vec<_>>().join(", ")
            ));
        };
        let mut declaration = existing.declaration.clone();
        declaration.limits = limits.apply(existing.limits);
        let vtype = host.load(declaration).map_err(|e| e.to_string())?;
        self.types.insert(name.to_string(), vtype);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ValidatorType>> {
        self.types.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ValidatorType>> {
        self.types.values()
    }
}

/// How to load a manifest.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Resource roots searched after the manifest's own directory.
    pub extra_resource_roots: Vec<PathBuf>,
}

/// Loads and checks the manifest at `path`. When `path` is a version entry
/// (a `version.yaml` naming a shared manifest), loads the manifest it names
/// and gives the arguments the entry's values.
pub fn load(
    path: &Path,
    host: &ComponentHost,
    types: &TypeRegistry,
    options: &LoadOptions,
) -> Result<Manifest, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // A version entry is small YAML; parsing it twice costs nothing.
    if let Ok(Some(document)) = yaml::parse_bytes(&bytes, YamlLimits::default()) {
        if version_entry::is_entry(&document) {
            let entry = version_entry::resolve(path, &document)?;
            let shared = std::fs::read(&entry.manifest).map_err(|source| ManifestError::Read {
                path: entry.manifest.clone(),
                source,
            })?;
            let mut manifest = load_bytes(&entry.manifest, &shared, host, types, options)?;
            version_entry::apply(&mut manifest, entry)?;
            return Ok(manifest);
        }
    }
    load_bytes(path, &bytes, host, types, options)
}

/// Loads and checks the manifest `bytes`, read from `path`.
fn load_bytes(
    path: &Path,
    bytes: &[u8],
    host: &ComponentHost,
    types: &TypeRegistry,
    options: &LoadOptions,
) -> Result<Manifest, ManifestError> {
    let file: Arc<Path> = Arc::from(path);
    let at = |mark: Mark| Location {
        file: file.clone(),
        mark,
    };
    let spec_error = |mark: Mark, message: String| ManifestError::Spec {
        location: at(mark),
        message,
    };
    let start = Mark { line: 1, col: 1 };

    let document = yaml::parse_bytes(bytes, YamlLimits::default())
        .map_err(|e| spec_error(e.mark, e.message))?;
    let Some(document) = document else {
        return Err(spec_error(
            start,
            "the manifest is empty; it needs at least a `validators:` list".into(),
        ));
    };
    let YamlKind::Map(entries) = &document.kind else {
        return Err(spec_error(
            document.mark,
            format!(
                "a manifest is a map with `arguments` and `validators`, found {}",
                document.kind_name()
            ),
        ));
    };
    for (key, _) in entries {
        let known = ["arguments", "validators", "validator_types"];
        if !key.as_str().is_some_and(|k| known.contains(&k)) {
            return Err(spec_error(
                key.mark,
                format!(
                    "unknown top-level key `{}` (known: {})",
                    key.as_str().unwrap_or("?"),
                    known.join(", ")
                ),
            ));
        }
    }

    let arguments = match document.get("arguments") {
        Some(section) => {
            arguments::parse(section).map_err(|(mark, message)| spec_error(mark, message))?
        }
        None => Vec::new(),
    };

    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut types = types.clone();
    let mut declared_at = BTreeMap::new();
    if let Some(section) = document.get("validator_types") {
        for (mark, declared) in declarations::parse(section, base_dir)
            .map_err(|(mark, message)| spec_error(mark, message))?
        {
            match declared {
                declarations::Declared::Type(declaration) => {
                    let name = declaration.name.clone();
                    types
                        .add(host, declaration)
                        .map_err(|message| spec_error(mark, message))?;
                    declared_at.insert(name, at(mark));
                }
                declarations::Declared::Limits { name, limits } => types
                    .set_limits(host, &name, &limits)
                    .map_err(|message| spec_error(mark, message))?,
            }
        }
    }

    let mut roots = vec![base_dir.to_path_buf()];
    roots.extend(options.extra_resource_roots.iter().cloned());
    let resources = ResourceRoots::open(&roots).map_err(|message| spec_error(start, message))?;

    let Some(validators) = document.get("validators") else {
        return Err(spec_error(
            start,
            "the manifest has no `validators` list".into(),
        ));
    };
    if !matches!(validators.kind, YamlKind::Seq(_)) {
        return Err(spec_error(
            validators.mark,
            format!(
                "`validators` must be a list of validators, found {}",
                validators.kind_name()
            ),
        ));
    }
    let builder = TreeBuilder {
        file: file.clone(),
        types: &types,
        resources: &resources,
        nodes: std::cell::Cell::new(0),
    };
    let root = builder.node("all", validators, "validators".to_string(), validators.mark)?;
    Ok(Manifest {
        path: path.to_path_buf(),
        arguments,
        root,
        resources: Arc::new(resources),
        types,
        declared_at,
        version: None,
    })
}

/// The most validator nodes a manifest's tree may hold once every
/// flow-control type has named its nested blocks. The real manifests hold a
/// few hundred; the cap keeps a type's `check` from making kiln build (and
/// hold) a tree far larger than the file it came from.
pub const MAX_TREE_NODES: usize = 20_000;

/// Builds checked nodes from YAML, recursing through nested blocks.
struct TreeBuilder<'a> {
    file: Arc<Path>,
    types: &'a TypeRegistry,
    resources: &'a ResourceRoots,
    /// Nodes built so far, against [`MAX_TREE_NODES`].
    nodes: std::cell::Cell<usize>,
}

impl TreeBuilder<'_> {
    fn error(&self, mark: Mark, path: &str, message: impl fmt::Display) -> ManifestError {
        ManifestError::Spec {
            location: Location {
                file: self.file.clone(),
                mark,
            },
            message: format!("{path}: {message}"),
        }
    }

    /// One `- type: spec` item of a validator list.
    fn item(&self, item: &Yaml, path: String) -> Result<Arc<ValidatorNode>, ManifestError> {
        let YamlKind::Map(entries) = &item.kind else {
            return Err(self.error(
                item.mark,
                &path,
                format!(
                    "a validator is a one-key map `type: spec`, found {}",
                    item.kind_name()
                ),
            ));
        };
        if entries.len() != 1 {
            let keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
            return Err(self.error(
                item.mark,
                &path,
                format!(
                    "a validator is a one-key map `type: spec`, found {} keys ({}); is a `-` missing before one of them?",
                    entries.len(),
                    keys.join(", ")
                ),
            ));
        }
        let (key, spec) = &entries[0];
        let Some(type_name) = key.as_str() else {
            return Err(self.error(key.mark, &path, "the validator type must be a name"));
        };
        let path = format!("{path}.{type_name}");
        self.node(type_name, spec, path, key.mark)
    }

    fn node(
        &self,
        type_name: &str,
        spec: &Yaml,
        path: String,
        mark: Mark,
    ) -> Result<Arc<ValidatorNode>, ManifestError> {
        let Some(vtype) = self.types.get(type_name) else {
            return Err(self.error(mark, &path, unknown_type_message(type_name, self.types)));
        };
        self.nodes.set(self.nodes.get() + 1);
        if self.nodes.get() > MAX_TREE_NODES {
            return Err(self.error(
                mark,
                &path,
                format!("the validator tree grows past {MAX_TREE_NODES} nodes here; no manifest needs that many (is a flow-control type naming the same block again and again?)"),
            ));
        }
        let spec_json = spec.to_json().to_string();
        let plan = match vtype.check(&spec_json) {
            Outcome::Returned(Ok(plan)) => plan,
            Outcome::Returned(Err(problem)) => {
                let at = spec.mark_at_pointer(&problem.pointer).unwrap_or(spec.mark);
                let where_ = format!("{path}{}", pointer_to_path(&problem.pointer));
                return Err(self.error(at, &where_, problem.message));
            }
            Outcome::Stopped(reason) => {
                return Err(self.error(mark, &path, format!("checking the spec failed: {reason}")))
            }
        };
        for resource in &plan.resources {
            if let Err(message) = self.resources.find(&resource.path) {
                let at = spec.mark_at_pointer(&resource.pointer).unwrap_or(spec.mark);
                return Err(self.error(at, &path, message));
            }
        }
        if let Some(message) = overlapping_blocks(type_name, &plan.nested) {
            return Err(self.error(spec.mark, &path, message));
        }
        let mut blocks = Vec::with_capacity(plan.nested.len());
        for nested in &plan.nested {
            let Some(block_yaml) = spec.at_pointer(&nested.pointer) else {
                return Err(self.error(
                    spec.mark,
                    &path,
                    format!("validator type `{type_name}` declared a nested block at `{}`, which its spec does not have", nested.pointer),
                ));
            };
            let block_path = format!("{path}{}", pointer_to_path(&nested.pointer));
            blocks.push(self.block(block_yaml, block_path, nested.shape)?);
        }
        Ok(Arc::new(ValidatorNode {
            type_name: type_name.to_string(),
            path,
            location: Location {
                file: self.file.clone(),
                mark,
            },
            spec_json,
            summary: plan.summary,
            blocks,
            vtype: vtype.clone(),
        }))
    }

    fn block(&self, yaml: &Yaml, path: String, shape: BlockShape) -> Result<Block, ManifestError> {
        match shape {
            BlockShape::Single => Ok(Block::Single(self.item(yaml, path)?)),
            BlockShape::Sequence => {
                let items: &[Yaml] = match &yaml.kind {
                    YamlKind::Seq(items) => items,
                    YamlKind::Null => &[],
                    _ => {
                        return Err(self.error(
                            yaml.mark,
                            &path,
                            format!("expected a list of validators, found {}", yaml.kind_name()),
                        ))
                    }
                };
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.item(item, format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Block::Sequence { label: path, nodes })
            }
        }
    }
}

/// Nested blocks must be distinct, disjoint parts of the spec: a block named
/// twice, or inside another, or the whole spec, would be built (and run)
/// more than once, and a type could multiply a small file into a huge tree.
/// Disjoint blocks keep the tree no larger than the YAML it came from.
fn overlapping_blocks(type_name: &str, nested: &[host::NestedBlock]) -> Option<String> {
    if nested.iter().any(|block| block.pointer.is_empty()) {
        return Some(format!(
            "validator type `{type_name}` declared its whole spec as a nested block; a block must be a part of the spec"
        ));
    }
    // Sorted as token sequences, a block and the blocks inside it stand
    // next to each other, so comparing neighbours finds every overlap.
    let mut pointers: Vec<Vec<&str>> = nested
        .iter()
        .map(|block| block.pointer.split('/').collect())
        .collect();
    pointers.sort();
    let overlap = pointers
        .windows(2)
        .find(|pair| pair[1].starts_with(&pair[0]))?;
    Some(format!(
        "validator type `{type_name}` declared nested blocks `{}` and `{}`, which overlap; each block must be a separate part of the spec",
        overlap[0].join("/"),
        overlap[1].join("/")
    ))
}

/// `/0/redhat` → `[0].redhat`, `/cases/openjdk` → `.cases.openjdk`.
pub fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        if token.parse::<usize>().is_ok() {
            out.push_str(&format!("[{token}]"));
        } else {
            out.push('.');
            out.push_str(&token);
        }
    }
    out
}

fn unknown_type_message(name: &str, types: &TypeRegistry) -> String {
    let known: Vec<&str> = types.names().collect();
    let suggestion = closest_name(name, &known)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    format!(
        "unknown validator type `{name}` (known: {}){suggestion}",
        known.join(", ")
    )
}

/// The known name within two edits of `name` (the nearest, then the first
/// alphabetically), for a did-you-mean.
fn closest_name<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_paths() {
        assert_eq!(pointer_to_path("/0/redhat"), "[0].redhat");
        assert_eq!(pointer_to_path("/cases/openjdk"), ".cases.openjdk");
        assert_eq!(pointer_to_path(""), "");
    }

    #[test]
    fn distances() {
        let known = ["package", "script", "copy_script", "any", "all"];
        assert_eq!(closest_name("pakage", &known), Some("package"));
        assert_eq!(closest_name("scrip", &known), Some("script"));
        assert_eq!(closest_name("", &["abc"]), None);
        assert_eq!(closest_name("al", &known), Some("all"));
    }
}
