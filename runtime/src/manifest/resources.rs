//! Resource roots: the ordered directories scripts and other resources are
//! read from. The first root holding a file wins. Reads go through cap-std
//! directory handles, so no path (`..`, absolute, or a symlink) can reach
//! outside the roots.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

pub struct ResourceRoots {
    roots: Vec<(PathBuf, Dir)>,
}

impl std::fmt::Debug for ResourceRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.roots.iter().map(|(p, _)| p))
            .finish()
    }
}

impl ResourceRoots {
    pub fn open(paths: &[PathBuf]) -> Result<ResourceRoots, String> {
        let mut roots = Vec::new();
        for path in paths {
            let dir = Dir::open_ambient_dir(path, ambient_authority())
                .map_err(|e| format!("cannot open resource root {}: {e}", path.display()))?;
            roots.push((path.clone(), dir));
        }
        Ok(ResourceRoots { roots })
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|(p, _)| p.as_path())
    }

    /// The root that holds `resource`, or why there is none.
    pub fn find(&self, resource: &str) -> Result<&Path, String> {
        check_relative(resource)?;
        for (path, dir) in &self.roots {
            match dir.metadata(resource) {
                Ok(meta) if meta.is_file() => return Ok(path),
                Ok(_) => {
                    return Err(format!(
                        "resource `{resource}` in {} is not a file",
                        path.display()
                    ))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("resource `{resource}` cannot be read: {e}")),
            }
        }
        let looked: Vec<String> = self
            .roots
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        Err(format!(
            "Script {resource} not found in any resource roots (looked in {})",
            looked.join(", ")
        ))
    }

    /// Reads `resource` from the first root that holds it.
    pub fn read(&self, resource: &str) -> Result<Vec<u8>, String> {
        self.read_limited(resource, usize::MAX)
            .map_err(|error| match error {
                ResourceReadError::TooLarge { .. } => unreachable!("no limit"),
                ResourceReadError::Failed(message) => message,
            })
    }

    /// Reads `resource` from the first root that holds it, holding at most
    /// `max_bytes`: only regular files are opened (a FIFO would block), and
    /// reading stops past the limit.
    pub fn read_limited(
        &self,
        resource: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, ResourceReadError> {
        check_relative(resource).map_err(ResourceReadError::Failed)?;
        for (path, dir) in &self.roots {
            let failed = |e: std::io::Error| {
                ResourceReadError::Failed(format!(
                    "cannot read resource `{resource}` from {}: {e}",
                    path.display()
                ))
            };
            // Looked at before opening: opening a FIFO blocks.
            match dir.metadata(resource) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => {
                    return Err(ResourceReadError::Failed(format!(
                        "resource `{resource}` in {} is not a regular file",
                        path.display()
                    )))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(failed(e)),
            }
            let file = dir.open(resource).map_err(failed)?;
            let mut bytes = Vec::new();
            let limit = u64::try_from(max_bytes)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            std::io::Read::read_to_end(&mut std::io::Read::take(file, limit), &mut bytes)
                .map_err(failed)?;
            if bytes.len() > max_bytes {
                return Err(ResourceReadError::TooLarge { limit: max_bytes });
            }
            return Ok(bytes);
        }
        Err(ResourceReadError::Failed(format!(
            "Script {resource} not found in any resource roots"
        )))
    }
}

/// Why a limited resource read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceReadError {
    /// The file holds more than the limit; nothing past it was read.
    TooLarge {
        limit: usize,
    },
    Failed(String),
}

/// Refuses paths that would leave the roots, with a message that says so
/// (cap-std would refuse them too, less clearly).
fn check_relative(resource: &str) -> Result<(), String> {
    let path = Path::new(resource);
    if resource.is_empty() {
        return Err("the resource path is empty".into());
    }
    if path.is_absolute() {
        return Err(format!("resource `{resource}` is an absolute path; resources are read from the resource roots only"));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "resource `{resource}` leaves the resource roots (`..` is not allowed)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_root_wins_and_escapes_are_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("s.sh"), "from b").unwrap();
        std::fs::write(a.path().join("s.sh"), "from a").unwrap();
        std::fs::write(b.path().join("only-b.sh"), "b").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.path().join("link")).unwrap();
        let roots = ResourceRoots::open(&[a.path().into(), b.path().into()]).unwrap();
        assert_eq!(roots.read("s.sh").unwrap(), b"from a");
        assert_eq!(roots.read("only-b.sh").unwrap(), b"b");
        assert!(roots
            .find("../../etc/shadow")
            .unwrap_err()
            .contains("leaves the resource roots"));
        assert!(roots.find("/etc/shadow").unwrap_err().contains("absolute"));
        assert!(
            roots.read("link").is_err(),
            "a symlink out of the root must not be followed"
        );
        assert_eq!(
            roots.read_limited("s.sh", 3),
            Err(ResourceReadError::TooLarge { limit: 3 })
        );
        assert_eq!(roots.read_limited("s.sh", 6).unwrap(), b"from a");
        let fifo = a.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(roots
            .read_limited("fifo", 10)
            .is_err_and(|e| format!("{e:?}").contains("not a regular file")));
        assert!(roots
            .find("missing.sh")
            .unwrap_err()
            .contains("not found in any resource roots"));
    }
}
