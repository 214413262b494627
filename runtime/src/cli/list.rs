//! `kiln list`: the plugins and versions found in the manifest
//! directories, the manifest each runs and the values a version entry sets,
//! and which versions share one manifest. Every field is a directory name
//! or YAML text, so each is escaped on its own.

use anyhow::Result;

use super::{catalog, shown, shown_path, Lookup};

pub fn run(lookup: &Lookup) -> Result<i32> {
    let (_, dirs) = lookup.load()?;
    let found = catalog::discover(&dirs);
    if found.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| shown_path(d)).collect();
        println!(
            "no plugins found (searched: {})",
            if searched.is_empty() {
                "nothing".into()
            } else {
                searched.join(", ")
            }
        );
        return Ok(0);
    }
    // Plugin and version names are directory names: data.
    let rows: Vec<ListRow> = found.iter().map(ListRow::of).collect();
    let width = rows
        .iter()
        .map(|row| row.plugin.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let manifest_width = rows
        .iter()
        .map(|row| row.manifest.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{}",
        format!(
            "{:width$}  {:10}  {:manifest_width$}  SETS",
            "PLUGIN", "VERSION", "MANIFEST"
        )
        .trim_end()
    );
    for row in &rows {
        println!(
            "{}",
            format!(
                "{:width$}  {:10}  {:manifest_width$}  {}",
                row.plugin, row.version, row.manifest, row.sets
            )
            .trim_end()
        );
    }
    // Which versions share one manifest, the way Sahara's plugins did.
    let mut shared: Vec<(&str, Vec<String>)> = Vec::new();
    for row in rows.iter().filter(|row| row.entry) {
        let label = format!("{} {}", row.plugin, row.version);
        match shared.iter_mut().find(|(m, _)| *m == row.manifest) {
            Some((_, versions)) => versions.push(label),
            None => shared.push((&row.manifest, vec![label])),
        }
    }
    if !shared.is_empty() {
        println!("\nshared manifests (version entries, see `kiln explain PLUGIN VERSION`):");
        for (manifest, versions) in shared {
            println!("  {manifest}: {}", versions.join(", "));
        }
    }
    Ok(0)
}

/// One line of `kiln list`, every field escaped.
struct ListRow {
    plugin: String,
    version: String,
    /// The manifest the version runs: its own, or the one its entry shares.
    manifest: String,
    /// The values a version entry sets, `name=value` (`(default)` for defaults).
    sets: String,
    entry: bool,
}

impl ListRow {
    fn of(found: &catalog::PluginVersion) -> ListRow {
        let (manifest, sets) = match found.entry() {
            None => (shown_path(&found.manifest), String::new()),
            Some(Ok(entry)) => (
                shown_path(&entry.manifest),
                entry
                    .values
                    .iter()
                    .map(|v| {
                        let suffix = match v.kind {
                            kiln::manifest::ValueKind::Fixed => "",
                            kiln::manifest::ValueKind::Default => " (default)",
                        };
                        format!("{}={}{suffix}", shown(&v.argument), shown(&v.value))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Some(Err(problem)) => (
                shown_path(&found.manifest),
                format!("(bad version entry: {}; see `kiln lint`)", shown(&problem)),
            ),
        };
        ListRow {
            plugin: shown(&found.plugin),
            version: shown(&found.version),
            manifest,
            sets,
            entry: found.is_entry(),
        }
    }
}
