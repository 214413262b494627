//! `kiln` does not link libguestfs; `kiln pack` hands its arguments over to
//! `kiln-pack`, which does (runtime/src/cli/hand_over.rs). The pack tests
//! run every pack through that hand-over; these check the split itself.

use super::*;

/// The shared libraries the dynamic loader would map for `binary`, as
/// `ldd` prints them (the loader lists them and exits; nothing runs).
fn loaded_libraries(binary: &str) -> String {
    let output = Command::new(binary)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .expect("the dynamic loader runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn kiln_starts_without_libguestfs_and_kiln_pack_links_it() {
    let kiln = loaded_libraries(env!("CARGO_BIN_EXE_kiln"));
    assert!(kiln.contains("libc.so"), "{kiln}");
    assert!(
        !kiln.contains("libguestfs"),
        "kiln loads libguestfs:\n{kiln}"
    );
    let pack = loaded_libraries(env!("CARGO_BIN_EXE_kiln-pack"));
    assert!(pack.contains("libguestfs.so"), "{pack}");
}

/// `kiln` alone in a directory, as a half-installed copy would be.
fn lone_kiln(dir: &Path) -> PathBuf {
    let lone = dir.join("kiln");
    // A hard link, so the copy's /proc/self/exe is in `dir`; a copy of the
    // debug binary (hundreds of MB) only when the link cannot be made.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_kiln"), &lone).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &lone).expect("copy kiln");
    }
    lone
}

/// `KILN pack --image IMAGE demo 1.0`, run by the binary at `kiln`.
fn pack_demo(kiln: &Path, image: &Path) -> Output {
    Command::new(kiln)
        .args(["pack", "--image"])
        .arg(image)
        .args(["demo", "1.0"])
        .env("KILN_DEFAULT_CONFIG", "")
        .current_dir(repo_root())
        .output()
        .expect("kiln runs")
}

#[test]
fn a_kiln_without_kiln_pack_beside_it_says_so_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kiln = lone_kiln(dir.path());
    let image = dir.path().join("image.qcow2");
    std::fs::write(&image, b"not really an image").unwrap();
    let output = pack_demo(&kiln, &image);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let missing = dir.path().join("kiln-pack");
    assert!(
        stderr.contains(&format!("there is none at {}", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("cargo install --path runtime"), "{stderr}");
    assert_eq!(std::fs::read(&image).unwrap(), b"not really an image");

    // Usage and help are kiln's own: they need no kiln-pack.
    let help = Command::new(&kiln)
        .args(["pack", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--test-only"));
}

#[test]
fn a_symlinked_kiln_hands_pack_to_the_kiln_pack_beside_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kiln");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let missing_image = dir.path().join("absent.qcow2");
    let output = pack_demo(&link, &missing_image);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    // kiln-pack ran the pack: the image is what is missing, not kiln-pack.
    assert!(!stderr.contains("kiln-pack"), "{stderr}");
    assert!(stderr.contains("absent.qcow2: no such file"), "{stderr}");
}
