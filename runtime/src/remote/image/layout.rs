//! What an image is made of on the host, so that a commit writes the result
//! the way the input was: its format (raw stays raw, qcow2 stays qcow2), its
//! qcow2 details (cluster size, compat level, compression type), whether its
//! clusters are compressed, and its backing file. This module reads those
//! facts from `qemu-img info` and `qemu-img check` reports and turns them into
//! `qemu-img convert` options; running the tools lives in the parent module.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The input image's layout, as `qemu-img` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImageLayout {
    /// "qcow2", "raw", ...
    pub format: String,
    /// Whether any cluster is compressed (qcow2 only): the result is then
    /// written compressed too.
    pub compressed: bool,
    /// `-o` creation options that keep the qcow2's details.
    pub create_options: Vec<String>,
    /// The file this image is an overlay of, if any.
    pub backing: Option<Backing>,
}

/// A backing file, as the image records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Backing {
    /// The name written in the image's header (may be relative to the image).
    pub recorded: String,
    /// Where it is (absolute).
    pub path: PathBuf,
    /// Its format, as recorded in the header or as `qemu-img` found it.
    pub format: Option<String>,
}

impl ImageLayout {
    /// The layout from `qemu-img info --output=json` and, for qcow2, `qemu-img
    /// check --output=json` of `image` (an absolute path). `Err` holds why
    /// the reports are unusable.
    pub fn from_reports(image: &Path, info: &Value, check: Option<&Value>) -> Result<Self, String> {
        let format = info["format"]
            .as_str()
            .filter(|f| !f.is_empty())
            .ok_or("qemu-img reports no format")?
            .to_string();
        // qemu-img check lists `compressed-clusters` only when there are some.
        let compressed = check
            .and_then(|c| c["compressed-clusters"].as_u64())
            .is_some_and(|n| n > 0);
        let create_options = if format == "qcow2" {
            qcow2_options(info)
        } else {
            Vec::new()
        };
        let backing = info["backing-filename"].as_str().map(|recorded| {
            let full = info["full-backing-filename"].as_str().unwrap_or(recorded);
            Backing {
                recorded: recorded.to_string(),
                path: absolute_beside(image, full),
                format: info["backing-filename-format"].as_str().map(str::to_string),
            }
        });
        Ok(ImageLayout {
            format,
            compressed,
            create_options,
            backing,
        })
    }

    /// `qemu-img convert` options (after `-f qcow2`, before the file names)
    /// that write the session's result into `target` with this layout. With a
    /// backing file, the overlay being converted must already sit directly on
    /// that backing file: convert copies only the top layer then.
    pub fn convert_options(&self, target: &Path) -> Vec<String> {
        let mut args = vec!["-O".to_string(), self.format.clone()];
        if self.compressed {
            args.push("-c".into());
        }
        if !self.create_options.is_empty() {
            args.push("-o".into());
            args.push(self.create_options.join(","));
        }
        if let Some(backing) = &self.backing {
            args.push("-B".into());
            args.push(backing.reference_from(target));
            if let Some(format) = &backing.format {
                args.push("-F".into());
                args.push(format.clone());
            }
        }
        args
    }
}

impl Backing {
    /// The name to record in a result written to `target`: the image's own
    /// name for its backing file when it still leads to the same file from
    /// there (an absolute name always does; a relative one does when the
    /// result sits in the image's directory), else the absolute path.
    pub fn reference_from(&self, target: &Path) -> String {
        if Path::new(&self.recorded).is_absolute() {
            return self.recorded.clone();
        }
        let from_target = target
            .parent()
            .unwrap_or(Path::new("/"))
            .join(&self.recorded);
        let same = match (fs::canonicalize(&from_target), fs::canonicalize(&self.path)) {
            (Ok(a), Ok(b)) => a == b,
            // Not a local file (a URL, say): qemu resolved it as given.
            (_, Err(_)) => true,
            (Err(_), Ok(_)) => false,
        };
        if same {
            self.recorded.clone()
        } else {
            self.path.to_string_lossy().into_owned()
        }
    }
}

/// Creation options that keep what a fresh qcow2 would otherwise change:
/// the cluster size, an old compat level (0.10 images still open in old
/// qemu) and a compression type other than the default zlib.
fn qcow2_options(info: &Value) -> Vec<String> {
    let mut options = Vec::new();
    if let Some(size) = info["cluster-size"].as_u64() {
        options.push(format!("cluster_size={size}"));
    }
    let specific = &info["format-specific"]["data"];
    if let Some(compat) = specific["compat"].as_str() {
        options.push(format!("compat={compat}"));
    }
    if let Some(kind) = specific["compression-type"].as_str() {
        if kind != "zlib" {
            options.push(format!("compression_type={kind}"));
        }
    }
    options
}

/// `name` as an absolute path, relative names taken from `image`'s directory.
fn absolute_beside(image: &Path, name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new("/")).join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qcow2_info() -> Value {
        json!({
            "format": "qcow2",
            "cluster-size": 65536,
            "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "compression-type": "zlib"}},
        })
    }

    #[test]
    fn a_plain_qcow2_keeps_its_cluster_size_and_compat_and_is_not_compressed() {
        let check = json!({"allocated-clusters": 10, "total-clusters": 100});
        let layout =
            ImageLayout::from_reports(Path::new("/i/a.qcow2"), &qcow2_info(), Some(&check))
                .unwrap();
        assert!(!layout.compressed);
        assert_eq!(layout.backing, None);
        assert_eq!(
            layout.convert_options(Path::new("/i/a.qcow2")),
            ["-O", "qcow2", "-o", "cluster_size=65536,compat=1.1"]
        );
    }

    #[test]
    fn compressed_clusters_make_a_compressed_result_with_the_same_compression_type() {
        let mut info = qcow2_info();
        info["format-specific"]["data"]["compression-type"] = json!("zstd");
        info["format-specific"]["data"]["compat"] = json!("1.1");
        let check = json!({"compressed-clusters": 64, "allocated-clusters": 64});
        let layout =
            ImageLayout::from_reports(Path::new("/i/a.qcow2"), &info, Some(&check)).unwrap();
        assert!(layout.compressed);
        assert_eq!(
            layout.convert_options(Path::new("/i/a.qcow2")),
            [
                "-O",
                "qcow2",
                "-c",
                "-o",
                "cluster_size=65536,compat=1.1,compression_type=zstd"
            ]
        );
    }

    #[test]
    fn raw_stays_raw_without_qcow2_options() {
        let layout =
            ImageLayout::from_reports(Path::new("/i/a.img"), &json!({"format": "raw"}), None)
                .unwrap();
        assert_eq!(layout.convert_options(Path::new("/o/b.img")), ["-O", "raw"]);
    }

    #[test]
    fn no_format_is_an_error() {
        assert!(ImageLayout::from_reports(Path::new("/i/a"), &json!({}), None).is_err());
    }

    #[test]
    fn a_backing_file_is_kept_by_its_recorded_name_when_that_still_leads_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        fs::write(&base, b"").unwrap();
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        let image = dir.path().join("a.qcow2");
        let mut info = qcow2_info();
        info["backing-filename"] = json!("base.qcow2");
        info["full-backing-filename"] = json!(base.to_str().unwrap());
        info["backing-filename-format"] = json!("qcow2");
        let layout = ImageLayout::from_reports(&image, &info, None).unwrap();
        let backing = layout.backing.clone().unwrap();
        assert_eq!(backing.path, base);
        // Beside the image: the relative name still works.
        let beside = layout.convert_options(&dir.path().join("out.qcow2"));
        assert_eq!(
            beside[beside.len() - 4..],
            ["-B", "base.qcow2", "-F", "qcow2"]
        );
        // In another directory: the relative name would miss, so the absolute path.
        let away = layout.convert_options(&dir.path().join("elsewhere/out.qcow2"));
        assert_eq!(
            away[away.len() - 4..],
            ["-B", base.to_str().unwrap(), "-F", "qcow2"]
        );
    }

    #[test]
    fn an_absolute_backing_name_is_kept_as_written() {
        let mut info = qcow2_info();
        info["backing-filename"] = json!("/images/base.raw");
        info["backing-filename-format"] = json!("raw");
        let layout = ImageLayout::from_reports(Path::new("/i/a.qcow2"), &info, None).unwrap();
        let options = layout.convert_options(Path::new("/o/out.qcow2"));
        assert_eq!(
            options[options.len() - 4..],
            ["-B", "/images/base.raw", "-F", "raw"]
        );
    }
}
