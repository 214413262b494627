//! What kiln prints and how: help texts, man pages and completions, `-q`,
//! colour, escaped hostile text, and a reader that goes away (a closed
//! pipe ends kiln quietly, an interrupted pack leaves the image unchanged).

use super::*;

#[test]
fn help_texts_describe_the_verbs() {
    let (stdout, _) = text(&kiln(&["--help"]));
    for verb in ["lint", "explain", "list", "pack", "validate"] {
        assert!(stdout.contains(verb), "{stdout}");
    }
    let (stdout, _) = text(&kiln(&["pack", "--help"]));
    for option in [
        "--image",
        "--root-filesystem",
        "--test-only",
        "--config-file",
        "--output",
        "--accel",
        "--report",
        "--verify",
        "--manifest",
        "--arg",
    ] {
        assert!(stdout.contains(option), "pack --help mentions {option}");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_kiln")).exists());
}

/// Asserts that nothing kiln wrote can steer a terminal, and that the
/// hostile text is there, visibly escaped.
fn assert_escaped(what: &str, output: &Output) {
    let (stdout, stderr) = text(output);
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            !bytes.contains(&0x1b) && !bytes.contains(&0x07),
            "{what}: raw ESC or BEL on {stream}:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("\\e") || stderr.contains("\\e"),
        "{what}: the escape sequence should show as `\\e`:\n{stdout}\n{stderr}"
    );
}

#[test]
fn hostile_names_and_component_text_reach_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // A manifest whose file name retitles the terminal, declaring a type
    // whose summary does too, with an argument description that clears
    // the line.
    let name = b"evil\x1b]0;owned\x07.yaml";
    let manifest = dir.path().join(OsStr::from_bytes(name));
    std::fs::write(
        &manifest,
        [
            "arguments:\n  colour: {description: \"\\x1b[2K\\rred\", default: \"\\x1b[31m\"}\n",
            "validator_types:\n",
            &declared("attacks", "    grants: [exec]\n"),
            "validators:\n  - attacks: {attack: escapes}\n",
        ]
        .concat(),
    )
    .unwrap();
    let path = manifest.as_os_str();

    let output = kiln_os(&["explain".as_ref(), path]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_escaped("explain", &output);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("evil\\e]0;owned\\u{7}.yaml"), "{stdout}");
    assert!(
        stdout.contains("- attacks: \\e]0;owned\\u{7}\\e[2K\\r\\e[32mall passed\\e[0m"),
        "{stdout}"
    );
    // White space (\r included) folds, as in any description.
    assert!(stdout.contains("\\e[2K red"), "{stdout}");

    let output = kiln_os(&["lint".as_ref(), path]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_escaped("lint", &output);
    assert!(
        text(&output).1.contains(
            "evil\\e]0;owned\\u{7}.yaml:4:3: warning: validator type `attacks`: exec without `commands`"
        ),
        "{:?}",
        text(&output)
    );

    let output = kiln_os(&[
        "pack".as_ref(),
        "--manifest".as_ref(),
        path,
        "--".as_ref(),
        "--help".as_ref(),
    ]);
    assert_escaped("plugin help", &output);
    assert!(
        text(&output).0.contains("      [default: \\e[31m]"),
        "{:?}",
        text(&output)
    );

    // Load errors name the file.
    let broken = dir.path().join(OsStr::from_bytes(b"broken\x1b[2J.yaml"));
    std::fs::write(&broken, "validators: [{nope: {}}]\n").unwrap();
    let output = kiln_os(&["lint".as_ref(), broken.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    assert_escaped("lint error", &output);
    let output = kiln_os(&["explain".as_ref(), broken.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    assert_escaped("explain error", &output);

    // An image path, a host name and an inventory line.
    let image = dir.path().join(OsStr::from_bytes(b"disk\x1b[2K.qcow2"));
    let output = kiln_os(&[
        "pack".as_ref(),
        "--image".as_ref(),
        image.as_os_str(),
        "--manifest".as_ref(),
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert_escaped("pack with a missing image", &output);
    let output = kiln_os(&[
        "validate".as_ref(),
        "--host".as_ref(),
        OsStr::from_bytes(b"web\x1b]0;x\x07"),
        "--manifest".as_ref(),
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert_escaped("validate --host", &output);
    let inventory = dir.path().join("hosts");
    std::fs::write(&inventory, b"[web]\nweb1\x1b[2K\x07\n").unwrap();
    let output = kiln_os(&[
        "validate".as_ref(),
        "--inventory".as_ref(),
        inventory.as_os_str(),
        "--manifest".as_ref(),
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert_escaped("validate --inventory", &output);

    // Plugin and version names are directory names.
    let plugins = tempfile::tempdir().unwrap();
    let version = plugins.path().join(OsStr::from_bytes(b"p\x1b[31m/1\x07"));
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("image.yaml"), "validators: []\n").unwrap();
    let output = kiln_os(&[
        "list".as_ref(),
        "--manifest-dir".as_ref(),
        plugins.path().as_os_str(),
    ]);
    assert_escaped("list", &output);
    assert!(
        text(&output).0.contains("p\\e[31m  1\\u{7}"),
        "{:?}",
        text(&output)
    );
}

/// Runs kiln with `env` set and stdout piped; for the colour cases.
fn kiln_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(args)
        .current_dir(repo_root())
        .env("KILN_DEFAULT_CONFIG", "")
        .env_remove("NO_COLOR");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("kiln runs")
}

#[test]
fn quiet_prints_only_the_closing_line_and_errors() {
    // Port 1 on loopback refuses at once: a real, fast, unreachable host.
    let output = kiln(&["validate", "-q", "--host", "127.0.0.1:1", "demo", "1.0"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("0 of 1 hosts passed in "), "{stdout}");
    assert!(
        stderr.starts_with("kiln: 127.0.0.1:1 UNREACHABLE: ")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    // Without -q: the opening line, the host's line and the table.
    let (stdout, _) = text(&kiln(&["validate", "--host", "127.0.0.1:1", "demo", "1.0"]));
    assert!(
        stdout.contains("checking 1 host(s)") && stdout.contains("HOST"),
        "{stdout}"
    );

    // A pack's opening line is progress too; its error is not.
    let output = kiln(&["-q", "pack", "--image", "/etc/hostname", "demo", "1.0"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("kiln: /etc/hostname is damaged or not a disk image"),
        "{stderr}"
    );

    let output = kiln(&["lint", "--quiet", "demo", "1.0"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output), (String::new(), String::new()));
    let output = kiln(&["lint", "-q", "tests/malformed/unknown_type.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("unknown validator type `pakage`"));
}

/// kiln's own colour codes; anything else with an ESC in it is a leak.
fn assert_only_kiln_colours(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for (i, _) in text.match_indices('\x1b') {
        let rest = &text[i..];
        assert!(
            ["\x1b[32m", "\x1b[1;31m", "\x1b[33m", "\x1b[0m"]
                .iter()
                .any(|code| rest.starts_with(code)),
            "{what}: an ESC kiln did not write: {text:?}"
        );
    }
    assert!(!bytes.contains(&0x07), "{what}: BEL in {text:?}");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
    let dir = tempfile::tempdir().unwrap();
    // A file name that retitles the terminal, shown in the opening line.
    let manifest = dir
        .path()
        .join(OsStr::from_bytes(b"evil\x1b]0;owned\x07.yaml"));
    std::fs::write(&manifest, "validators: []\n").unwrap();
    let manifest = manifest.to_str().unwrap();
    let args = ["validate", "--host", "127.0.0.1:1", manifest];
    let red = "\x1b[1;31m";

    let output = kiln_env(&[&["--color", "always"], &args[..]].concat(), &[]);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains(&format!("{red}UNREACHABLE\x1b[0m: ")),
        "{stdout:?}"
    );
    assert!(
        stdout.contains(&format!("{red}unreachable\x1b[0m  ")),
        "{stdout:?}"
    );
    assert!(stdout.contains("evil\\e]0;owned\\u{7}.yaml"), "{stdout:?}");
    assert_only_kiln_colours("--color always", &output.stdout);
    // A flag beats the environment.
    let output = kiln_env(
        &[&["--color", "always"], &args[..]].concat(),
        &[("NO_COLOR", "1")],
    );
    assert!(output.stdout.contains(&0x1b));

    for (flags, env) in [
        (&["--color", "never"][..], &[][..]),
        (&[][..], &[][..]),
        (&["--color", "auto"][..], &[][..]),
    ] {
        let output = kiln_env(&[flags, &args[..]].concat(), env);
        assert!(
            text(&output).0.contains("unreachable"),
            "{:?}",
            text(&output)
        );
        assert!(
            !output.stdout.contains(&0x1b),
            "{flags:?}: {:?}",
            text(&output)
        );
    }

    // On a terminal (a pty from script(1)), auto colours unless NO_COLOR
    // is set.
    let on_terminal = |no_color: Option<&str>| {
        let line = format!(
            "{} validate --host 127.0.0.1:1 demo 1.0",
            env!("CARGO_BIN_EXE_kiln")
        );
        let mut command = Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .current_dir(repo_root())
            .env("TERM", "xterm")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        command.output().expect("script(1) runs")
    };
    let output = on_terminal(None);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("{red}unreachable\x1b[0m")),
        "{:?}",
        text(&output)
    );
    let output = on_terminal(Some("1"));
    assert!(
        text(&output).0.contains("unreachable"),
        "{:?}",
        text(&output)
    );
    assert!(!output.stdout.contains(&0x1b), "{:?}", text(&output));
}

#[test]
fn completions_for_each_shell() {
    for (shell, markers) in [
        (
            "bash",
            &["_kiln()", "complete -F _kiln", "--test-only", "--manifest"][..],
        ),
        ("zsh", &["#compdef kiln", "--test-only", "completions"][..]),
        (
            "fish",
            &["complete -c kiln", "-l test-only", "-l color"][..],
        ),
    ] {
        let output = kiln(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let (stdout, _) = text(&output);
        for marker in markers {
            assert!(stdout.contains(marker), "{shell}: no `{marker}`");
        }
    }
    // The bash script works: bash completes `kiln pack --ima` and `kiln va`.
    let script = text(&kiln(&["completions", "bash"])).0;
    // The words as bash would split the line, the last being completed
    // (empty after a trailing space).
    let complete = |words: &[&str]| {
        let cword = words.len() - 1;
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({}); COMP_CWORD={cword}; _kiln kiln \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" ")
        );
        let output = Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{:?}", text(&output));
        text(&output).0
    };
    assert_eq!(complete(&["kiln", "pack", "--ima"]).trim(), "--image");
    assert_eq!(complete(&["kiln", "va"]).trim(), "validate");
    let colours = complete(&["kiln", "--color", ""]);
    assert_eq!(
        colours.split_whitespace().collect::<Vec<_>>(),
        ["auto", "always", "never"]
    );
}

#[test]
fn the_man_page_is_generated_and_renders() {
    for (args, title) in [
        (&["man"][..], ".TH kiln 1"),
        (&["man", "pack"][..], ".TH kiln-pack 1"),
    ] {
        let output = kiln(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let page = output.stdout;
        let roff = String::from_utf8_lossy(&page);
        assert!(roff.contains(title), "{args:?}: {roff}");
        // groff renders it without a warning (-ww: all of them).
        let mut groff = Command::new("groff")
            // -P-cbou: plain text, no overstrike or escape sequences.
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("groff runs (.ci/install-deps installs groff-base)");
        use std::io::Write;
        groff.stdin.take().unwrap().write_all(&page).unwrap();
        let rendered = groff.wait_with_output().unwrap();
        let (shown, warnings) = text(&rendered);
        assert!(
            rendered.status.success() && warnings.is_empty(),
            "{args:?}: {warnings}"
        );
        let shown = shown.replace(['\u{2010}', '\u{2212}'], "-");
        for option in ["--quiet", "--color"] {
            assert!(shown.contains(option), "{args:?}: {option} in {shown}");
        }
        if args.len() == 2 {
            assert!(
                shown.contains("--test-only") && shown.contains("--output"),
                "{shown}"
            );
        } else {
            assert!(
                shown.contains("completions") && shown.contains("validate"),
                "{shown}"
            );
        }
    }
    assert_refused(
        &["man", "pakc"],
        &["no verb `pakc` (verbs: lint, explain"],
        &[],
    );
}

/// Runs kiln with stdout (and, if asked, stderr) a pipe whose reading end
/// is already closed, as `kiln ... | head -1` leaves it once head exits.
fn with_closed_pipe(args: &[&str], close_stderr: bool) -> Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: a two-element array for pipe(2).
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just made and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(args)
        .current_dir(repo_root())
        .stdout(write.try_clone().unwrap());
    if close_stderr {
        command.stderr(write);
    }
    command.output().expect("kiln runs")
}

#[test]
fn a_closed_pipe_ends_kiln_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [
        &["list"][..],
        &["explain", "demo", "1.0"][..],
        &["completions", "bash"][..],
        &["man"][..],
        // Before any host is contacted, and (with -q) from the hosts'
        // worker threads writing to a closed stderr.
        &["validate", "--host", "127.0.0.1:1", "demo", "1.0"][..],
    ] {
        let output = with_closed_pipe(args, false);
        let (_, stderr) = text(&output);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "{args:?}");
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            output.status
        );
    }
    let output = with_closed_pipe(
        &[
            "validate",
            "-q",
            "--host",
            "127.0.0.1:1",
            "--host",
            "127.0.0.2:1",
            "demo",
            "1.0",
        ],
        true,
    );
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        output.status
    );
}

#[test]
fn help_names_the_new_verbs_and_options() {
    let (stdout, _) = text(&kiln(&["--help"]));
    for word in [
        "completions",
        "man",
        "--quiet",
        "--color",
        "PLUGIN VERSION",
        "NO_COLOR",
    ] {
        assert!(
            stdout.contains(word),
            "kiln --help mentions {word}: {stdout}"
        );
    }
    let (stdout, _) = text(&kiln(&["pack", "--help"]));
    for word in [
        "--quiet",
        "--color <WHEN>",
        "only what follows it is the plugin's",
    ] {
        assert!(
            stdout.contains(word),
            "pack --help mentions {word}: {stdout}"
        );
    }
}

#[test]
fn a_pack_whose_reader_goes_away_cleans_up_and_leaves_the_image_unchanged() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    std::fs::copy(support::demo_image(), &image).unwrap();
    let before = support::sha256_file(&image);
    // `kiln pack ... | head`: read up to the line saying the appliance is
    // up, then close the pipe, so that kiln's next line (the first
    // validator's, printed from inside the run) finds no reader.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["pack", "--image", image.to_str().unwrap(), "demo", "1.0"])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kiln runs");
    let mut read = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    while !read.contains("image ready") {
        assert!(
            stdout.read_line(&mut read).unwrap() > 0,
            "kiln ended early: {read}"
        );
    }
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let (_, stderr) = text(&output);
    assert!(stderr.is_empty(), "no panic, no message: {stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        output.status
    );
    assert_eq!(
        support::sha256_file(&image),
        before,
        "the image is unchanged"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [OsStr::new("demo.qcow2")],
        "no overlay left beside it"
    );
    // No appliance still runs on it: none has the directory in its command line.
    let needle = dir.path().as_os_str().as_bytes();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        assert!(
            !cmdline.windows(needle.len()).any(|w| w == needle),
            "process {:?} still uses the image: {}",
            entry.file_name(),
            String::from_utf8_lossy(&cmdline)
        );
    }
}

#[test]
fn help_names_the_report_and_log_options() {
    for verb in ["pack", "validate"] {
        let (stdout, _) = text(&kiln(&[verb, "--help"]));
        for option in ["--report-format", "--log-file", "junit"] {
            assert!(
                stdout.contains(option),
                "{verb} --help lacks {option}:\n{stdout}"
            );
        }
    }
    let (stdout, _) = text(&kiln(&["pin", "--help"]));
    assert!(stdout.contains("sha256"), "{stdout}");
}
