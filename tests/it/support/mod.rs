//! Helpers shared by the integration tests: one kiln per test binary (the
//! components compile once), manifests written to temporary directories, and
//! runs against the scripted remote.
#![allow(dead_code)]

pub mod reports;
pub mod sshd_fleet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::host::HostOptions;
use kiln::interpreter::{Quiet, RunSummary};
use kiln::manifest::{LoadOptions, Manifest, ManifestError};
use kiln::remote::scripted::ScriptedRemote;
use kiln::Kiln;

pub fn kiln() -> &'static Kiln {
    static KILN: OnceLock<Kiln> = OnceLock::new();
    KILN.get_or_init(|| Kiln::new(HostOptions::with_default_cache()).expect("kiln starts"))
}

/// A manifest in a temporary directory, with resource files beside it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Fixture {
    pub fn new(yaml: &str, files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        let path = dir.path().join("image.yaml");
        std::fs::write(&path, yaml).unwrap();
        Fixture { dir, path }
    }

    pub fn load(&self) -> Result<Manifest, ManifestError> {
        kiln().load(&self.path, &LoadOptions::default())
    }

    pub fn manifest(&self) -> Manifest {
        self.load()
            .unwrap_or_else(|e| panic!("manifest should load: {e}"))
    }
}

pub fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `yaml` against `remote` and returns the summary; the remote keeps
/// its log (clones share it).
pub fn run(
    yaml: &str,
    files: &[(&str, &str)],
    remote: &ScriptedRemote,
    given: &[(&str, &str)],
    test_only: bool,
) -> RunSummary {
    let fixture = Fixture::new(yaml, files);
    let manifest = fixture.manifest();
    let (summary, _) = kiln().run(
        &manifest,
        remote.clone(),
        &args(given),
        test_only,
        Box::new(Quiet),
    );
    summary
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The path of an example or hostile component (built by the dev-only
/// `test-components` crate), by its file stem.
pub fn component(name: &str) -> PathBuf {
    kiln_test_components::component(name)
        .unwrap_or_else(|| panic!("no example or hostile component builds {name}.wasm"))
        .to_path_buf()
}

/// The cached demo Debian 12 image (built by `scripts/build-demo-image.sh`
/// on first use). Tests copy it before changing anything.
pub fn demo_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let script = repo_root().join("scripts/build-demo-image.sh");
        let output = std::process::Command::new(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("running build-demo-image.sh");
        assert!(output.status.success(), "build-demo-image.sh failed");
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

/// The SHA-256 of a file, as hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    kiln::host::hex(&sha2::Sha256::digest(bytes))
}

/// The directory of Sahara's real manifests (`PLUGIN/image.yaml`,
/// `cdh/v5_*/image.yaml`, each with its RESOURCES list), from
/// `KILN_SAHARA_CORPUS`. Tests that call it carry
/// `#[cfg_attr(not(sahara_corpus), ignore = ...)]`, so without the variable
/// they are reported as ignored; with it, a wrong path fails them.
pub fn sahara_corpus() -> PathBuf {
    let dir = std::env::var_os("KILN_SAHARA_CORPUS")
        .filter(|dir| !dir.is_empty())
        .expect("KILN_SAHARA_CORPUS names the Sahara corpus (…/shared/corpus/sahara); it was set when this test was built");
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("spark/image.yaml").is_file(),
        "KILN_SAHARA_CORPUS={} holds no spark/image.yaml: not the Sahara corpus",
        dir.display()
    );
    dir
}

/// The processes whose command line mentions `needle`, each as its pid and
/// its command line (arguments joined by spaces): how tests check that no
/// qemu, ssh or timed-out command stayed behind.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(needle).then_some((pid, text))
        })
        .collect()
}
