//! The sandbox keeps its word: one spec-driven component (`attacks`)
//! tries what each grant, pattern and narrowing key should refuse, and the
//! caps on plans, trees, re-runs, arguments and component paths hold.

use super::*;

/// A manifest declaring the `attacks` type with `declaration` (grants and
/// narrowing keys, indented four spaces), then `validators`.
fn attacks_manifest(declaration: &str, validators: &str) -> String {
    let wasm = component("kiln_hostile_attacks");
    format!(
        "validator_types:\n  attacks:\n    wasm: {}\n{declaration}    limits: {LIMITS}\nvalidators:\n{validators}  - package: {LATER}\n",
        wasm.display()
    )
}

/// Runs one attack (a flow-style spec map) and returns the summary.
fn attack(declaration: &str, spec: &str, remote: &ScriptedRemote, test_only: bool) -> RunSummary {
    support::run(
        &attacks_manifest(declaration, &format!("  - attacks: {spec}\n")),
        &[],
        remote,
        &[],
        test_only,
    )
}

/// The failure of the attacks node, printed for --nocapture.
fn attack_failure(summary: &RunSummary) -> String {
    match &summary.outcome {
        Err(RunError::Validation(error)) => {
            assert!(error.path.starts_with("validators[0].attacks"), "{error:?}");
            eprintln!("attacks: {}", error.message);
            error.message.clone()
        }
        other => panic!("the attack must fail the run: {other:?}"),
    }
}

/// Runs an attack kiln must refuse before anything reaches the target:
/// the run fails with `expected` in its message, and the target received
/// no call at all. Returns the message.
fn refused_before_the_target(
    declaration: &str,
    spec: &str,
    remote: &ScriptedRemote,
    test_only: bool,
    expected: &str,
) -> String {
    let message = attack_failure(&attack(declaration, spec, remote, test_only));
    assert!(message.contains(expected), "{spec}: {message}");
    assert!(remote.calls().is_empty(), "{spec}: {:?}", remote.calls());
    message
}

/// What the attack noted as changes when it passed.
fn attack_notes(summary: &RunSummary) -> Vec<String> {
    assert!(summary.passed(), "{:?}", summary.outcome);
    summary
        .records
        .iter()
        .find(|r| r.path == "validators[0].attacks")
        .map(|r| match &r.status {
            kiln::interpreter::Status::Changed(notes) => notes.clone(),
            _ => Vec::new(),
        })
        .unwrap_or_default()
}

const EXEC_TRUE: &str = "    grants: [exec]\n    commands: ['true']\n";

#[test]
fn env_option_name_cannot_turn_an_allowed_command_into_a_shell() {
    // `env --split-string='sh -c ...' true` would run the shell as root.
    refused_before_the_target(
        EXEC_TRUE,
        r#"{attack: command, command: 'true', env: {"--split-string": "sh -c 'touch /tmp/pwned' --"}}"#,
        &ScriptedRemote::new("debian"),
        false,
        "was denied the environment entry `--split-string`: a name must be letters, digits and `_`",
    );
}

#[test]
fn env_names_that_change_program_lookup_need_the_declaration() {
    for name in [
        "PATH",
        "LD_PRELOAD",
        "BASH_ENV",
        "ENV",
        "IFS",
        "LD_LIBRARY_PATH",
    ] {
        refused_before_the_target(
            EXEC_TRUE,
            &format!("{{attack: command, command: 'true', env: {{{name}: /tmp/evil}}}}"),
            &ScriptedRemote::new("debian"),
            false,
            &format!("was denied the environment entry `{name}`: it changes which program runs or what it loads; the declaration must allow it by name (`env: [{name}]`)"),
        );
    }
    // Allowed by name: it reaches the target, after `env --`.
    let remote = ScriptedRemote::new("debian");
    let summary = attack(
        "    grants: [exec]\n    commands: ['true']\n    env: [PATH]\n",
        "{attack: command, command: 'true', env: {PATH: /opt/app/bin}}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    let Call::Run(command) = &remote.calls()[0] else {
        panic!("{:?}", remote.calls())
    };
    assert_eq!(
        command.env,
        [("PATH".to_string(), "/opt/app/bin".to_string())]
    );
    assert!(command
        .to_shell_line()
        .starts_with("env -- PATH=/opt/app/bin /bin/sh -c"));
}

#[test]
fn patterns_grant_no_more_than_they_say() {
    let cases = [
        // `*` is one word: no extra arguments, no -exec.
        ("find *", "find / -exec perl -e 'system(\"id\")' {} +"),
        // `#` would comment out the tail the pattern checked.
        ("chmod * /srv/app", "chmod u+s /x # /srv/app"),
        ("chmod ** /srv/app", "chmod u+s /x # /srv/app"),
        // Globs, braces and tildes would expand to other paths.
        ("chmod 0644 *", "chmod 0644 /etc/*"),
        ("cat /srv/app/*", "cat /srv/app/{x,../../etc/shadow}"),
        ("chmod * /srv/app", "chmod 777 /etc/shadow /srv/app"),
    ];
    for (pattern, command) in cases {
        refused_before_the_target(
            &format!("    grants: [exec]\n    commands: ['{pattern}']\n"),
            &format!(
                "{{attack: command, command: \"{}\"}}",
                command.replace('"', "\\\"")
            ),
            &ScriptedRemote::new("debian"),
            false,
            "it is outside the type's allowed command patterns",
        );
    }
}

#[test]
fn programs_run_without_a_shell_and_match_their_words() {
    let remote = ScriptedRemote::new("debian");
    let summary = attack(
        "    grants: [exec]\n    commands: ['chmod * /srv/app']\n",
        "{attack: program, argv: [chmod, 'u+s;id', /srv/app]}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.commands()[0], "exec chmod 'u+s;id' /srv/app");
    refused_before_the_target(
        "    grants: [exec]\n    commands: ['chmod * /srv/app']\n",
        "{attack: program, argv: [chmod, 777, /etc/shadow, /srv/app]}",
        &ScriptedRemote::new("debian"),
        false,
        "outside the type's allowed command patterns",
    );
}

#[test]
fn test_only_is_enforced_on_nested_blocks() {
    // The type asks for reconcile inside a test-only run: its block runs
    // test-only (the package is only checked, never installed) and the
    // request fails the node.
    let remote =
        ScriptedRemote::new("debian").on("dpkg -s", [CommandOutput::failure(1, "not installed")]);
    let summary = attack(
        "    grants: [nested]\n",
        "{attack: escalate, block: [{package: nfs-common}]}",
        &remote,
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("asked to run nested block 0 in reconcile mode inside a test-only run; it ran test-only"),
        "{message}"
    );
    assert_eq!(remote.commands(), ["dpkg -s nfs-common"]);
    let nested = summary
        .records
        .iter()
        .find(|r| r.path.contains("package"))
        .expect("the nested package ran");
    assert!(nested.test_only);

    // The same type in a reconciling run may reconcile.
    let remote = ScriptedRemote::new("debian").on(
        "dpkg -s",
        [
            CommandOutput::failure(1, "not installed"),
            CommandOutput::success(""),
        ],
    );
    let summary = attack(
        "    grants: [nested]\n",
        "{attack: escalate, block: [{package: nfs-common}]}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert!(
        remote.commands().iter().any(|c| c.contains("apt-get")),
        "{:?}",
        remote.commands()
    );
}

#[test]
fn test_only_writes_only_scratch_space() {
    let write = "    grants: [write-file]\n";
    let remote = ScriptedRemote::new("debian").with_file("/etc/motd", b"original");
    refused_before_the_target(
        write,
        "{attack: write, path: /etc/motd, contents: owned, mode: '644'}",
        &remote,
        true,
        "was denied writing `/etc/motd` in a test-only run: a test-only run writes only to scratch space (/tmp/)",
    );
    assert_eq!(remote.file("/etc/motd").unwrap(), b"original");

    // Scratch space is fine; a path that climbs out of it is not.
    let remote = ScriptedRemote::new("debian");
    let summary = attack(
        write,
        "{attack: write, path: /tmp/kiln-probe, contents: ok, mode: '600'}",
        &remote,
        true,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.file("/tmp/kiln-probe").unwrap(), b"ok");
    refused_before_the_target(
        write,
        "{attack: write, path: /tmp/../etc/motd, contents: x, mode: '644'}",
        &ScriptedRemote::new("debian"),
        true,
        "in a test-only run",
    );

    // A symlink in scratch space pointing elsewhere is refused by the target.
    let remote = ScriptedRemote::new("debian").with_symlink("/tmp/link", "/etc");
    let summary = attack(
        write,
        "{attack: write, path: /tmp/link/motd, contents: x, mode: '644'}",
        &remote,
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("it is reached through a symlink (/tmp/link -> /etc)"),
        "{message}"
    );
    assert_eq!(remote.file("/tmp/link/motd"), None);
}

#[test]
fn path_patterns_narrow_reads_and_writes() {
    let declaration = "    grants: [read-file, write-file]\n    paths: {read: ['/srv/app/**'], write: ['/srv/app/*.conf']}\n";
    let ok = ScriptedRemote::new("debian");
    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/site.conf, contents: x, mode: '640'}",
        &ok,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(ok.file("/srv/app/site.conf").unwrap(), b"x");

    for (spec, expected) in [
        ("{attack: write, path: /etc/sudoers.d/app, contents: x, mode: '440'}", "was denied writing `/etc/sudoers.d/app`: it is outside the type's allowed path patterns"),
        ("{attack: write, path: /srv/app/../../etc/cron.d/x.conf, contents: x, mode: '644'}", "a path must be absolute without `.`, `..` or empty parts"),
        ("{attack: write, path: /srv/app/sub/x.conf, contents: x, mode: '644'}", "outside the type's allowed path patterns"),
        ("{attack: read, path: /etc/shadow}", "was denied reading `/etc/shadow`: it is outside the type's allowed path patterns"),
        ("{attack: metadata, path: /root/.ssh/id_rsa}", "was denied inspecting `/root/.ssh/id_rsa`"),
    ] {
        let remote = ScriptedRemote::new("debian").with_file("/etc/shadow", b"root:secret");
        let message = refused_before_the_target(declaration, spec, &remote, false, expected);
        assert!(!message.contains("secret"), "{message}");
    }

    // Inside the patterns but through a symlink to elsewhere: refused.
    let remote = ScriptedRemote::new("debian")
        .with_symlink("/srv/app", "/etc")
        .with_file("/etc/shadow", b"root:secret");
    let summary = attack(
        declaration,
        "{attack: read, path: /srv/app/shadow}",
        &remote,
        false,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("reached through a symlink (/srv/app -> /etc)"),
        "{message}"
    );
    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/x.conf, contents: x, mode: '644'}",
        &remote,
        false,
    );
    assert!(attack_failure(&summary).contains("reached through a symlink"));
}

#[test]
fn write_file_with_keeps_owner_and_mode_and_metadata_reads_them() {
    let declaration = "    grants: [read-file, write-file]\n";
    let remote =
        ScriptedRemote::new("debian").with_file_owned("/srv/app/site.conf", b"old", 0o640, 33, 33);
    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/site.conf, contents: new}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.file("/srv/app/site.conf").unwrap(), b"new");
    assert_eq!(
        remote.file_owner_and_mode("/srv/app/site.conf"),
        Some((0o640, 33, 33))
    );

    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/site.conf, contents: newer, uid: '0'}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        remote.file_owner_and_mode("/srv/app/site.conf"),
        Some((0o640, 0, 33))
    );

    let summary = attack(
        declaration,
        "{attack: metadata, path: /srv/app/site.conf}",
        &remote,
        false,
    );
    assert_eq!(
        attack_notes(&summary),
        ["metadata FileKind::Regular size 5 mode 640 owner 0:33"]
    );
    let summary = attack(
        declaration,
        "{attack: metadata, path: /srv/app/none}",
        &remote,
        false,
    );
    assert_eq!(attack_notes(&summary), ["metadata: nothing there"]);
}

#[test]
fn a_file_larger_than_the_output_limit_is_not_handed_over() {
    let remote = ScriptedRemote::new("debian").with_file("/var/log/huge", &vec![b'x'; 2 << 20]);
    let summary = support::run(
        &attacks_manifest(
            "    grants: [read-file]\n",
            "  - attacks: {attack: read, path: /var/log/huge}\n",
        )
        .replace("log_kib: 64}", "log_kib: 64, output_mib: 1}"),
        &[],
        &remote,
        &[],
        false,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("was stopped: /var/log/huge passed its output limit of 1 MiB"),
        "{message}"
    );
    assert!(!remote.commands().iter().any(|c| c.contains(LATER)));
}

#[test]
fn argument_bytes_are_capped() {
    // 1000 values of 40 MiB once reached 3 GB; the first one passes the cap.
    let remote = ScriptedRemote::new("debian");
    let started = Instant::now();
    let summary = support::run(
        &attacks_manifest(
            "    grants: [set-argument]\n",
            "  - attacks: {attack: set_arguments, times: '1000', bytes: '41943040'}\n",
        )
        .replace(
            "memory_mib: 16, log_kib: 64}",
            "memory_mib: 128, log_kib: 64, argument_kib: 64}",
        ),
        &[],
        &remote,
        &[],
        false,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("was stopped: the arguments it set passed its limit of 64 KiB"),
        "{message}"
    );
    assert!(
        !summary.arguments.keys().any(|k| k.starts_with("flood_")),
        "{:?}",
        summary.arguments.keys()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_plan_cannot_multiply_the_tree() {
    // 250 bytes that would plan 64^3 nodes: refused at once.
    let inner = "{attack: plan_bomb, copies: '64', block: [{package: x}]}";
    let middle = format!("{{attack: plan_bomb, copies: '64', block: [{{attacks: {inner}}}]}}");
    let outer = format!("{{attack: plan_bomb, copies: '64', block: [{{attacks: {middle}}}]}}");
    let fixture = Fixture::new(
        &attacks_manifest("    grants: [nested]\n", &format!("  - attacks: {outer}\n")),
        &[],
    );
    let started = Instant::now();
    let message = fixture.load().expect_err("must not load").to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains(
            "validator type `attacks` declared nested blocks `/block` and `/block`, which overlap"
        ),
        "{message}"
    );
    assert!(
        message.starts_with(&format!("{}:", fixture.path.display())),
        "{message}"
    );
}

#[test]
fn a_tree_past_the_node_cap_is_a_clear_load_error() {
    let count = kiln::manifest::MAX_TREE_NODES + 1;
    let mut yaml = String::from("validators:\n");
    for i in 0..count {
        yaml.push_str(&format!("  - package: p{i}\n"));
    }
    let fixture = Fixture::new(&yaml, &[]);
    let message = fixture.load().expect_err("must not load").to_string();
    assert!(
        message.contains(&format!(
            "the validator tree grows past {} nodes here",
            kiln::manifest::MAX_TREE_NODES
        )),
        "{message}"
    );
}

#[test]
fn re_running_a_nested_block_in_a_loop_is_stopped() {
    let remote = ScriptedRemote::new("debian");
    let started = Instant::now();
    let summary = attack(
        "    grants: [nested]\n",
        "{attack: nested_loop, block: [{package: x}]}",
        &remote,
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("was stopped: it ran nested block 0 more than 4 times in one run"),
        "{message}"
    );
    assert_eq!(remote.commands().len(), 4, "{:?}", remote.commands());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Keeps every log line a run emits.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl kiln::interpreter::Observer for Logs {
    fn event(&mut self, event: kiln::interpreter::Event<'_>) {
        if let kiln::interpreter::Event::Log { message, .. } = event {
            self.0.lock().unwrap().push(message.to_string());
        }
    }
}

#[test]
fn text_from_a_component_is_data_not_terminal_control() {
    let fixture = Fixture::new(
        &attacks_manifest("    grants: []\n", "  - attacks: {attack: escapes}\n"),
        &[],
    );
    let manifest = fixture.manifest();
    let node = &manifest.root.blocks[0];
    let kiln::manifest::Block::Single(node) = node else {
        panic!()
    };
    assert_eq!(
        node.summary,
        "\\e]0;owned\\u{7}\\e[2K\\r\\e[32mall passed\\e[0m"
    );
    let logs = Logs::default();
    let (summary, _) = kiln().run(
        &manifest,
        ScriptedRemote::new("debian"),
        &args(&[]),
        false,
        Box::new(logs.clone()),
    );
    let message = attack_failure(&summary);
    assert_eq!(
        message,
        "\\e[2K\\r\\e[32m✔ all validators passed\\e[0m\\nreally"
    );
    let logs = logs.0.lock().unwrap().clone();
    assert_eq!(logs, ["\\e[1A\\e[2K\\e[32mPASSED\\e[0m everything"]);
    let shown = format!("{:?}", summary.outcome) + &logs.concat();
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'));
}

#[test]
fn re_runs_that_multiply_through_nesting_stop_at_the_run_cap() {
    // Each level runs its block 300 times, within its own limit; two levels
    // would run 90 300 validators. The run stops at kiln's cap instead.
    let remote = ScriptedRemote::new("debian");
    let inner = "{attacks: {attack: repeat, times: '300', block: [{package: x}]}}";
    let summary = support::run(
        &attacks_manifest(
            "    grants: [nested]\n",
            &format!("  - attacks: {{attack: repeat, times: '300', block: [{inner}]}}\n"),
        )
        .replace("log_kib: 64}", "log_kib: 64, nested_reruns: 300}"),
        &[],
        &remote,
        &[],
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains(&format!(
            "the run has started {} validators and stops here",
            kiln::interpreter::MAX_NODE_RUNS
        )),
        "{message}"
    );
    assert!(summary.records.len() <= kiln::interpreter::MAX_NODE_RUNS);
    assert!(!remote.commands().iter().any(|c| c.contains(LATER)));
}

#[test]
fn a_component_path_naming_a_fifo_or_device_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("validator.wasm");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for wasm in [fifo.display().to_string(), "/dev/zero".to_string()] {
        let fixture = Fixture::new(
            &format!("validator_types:\n  odd:\n    wasm: {wasm}\n    grants: []\nvalidators:\n  - odd: ~\n"),
            &[],
        );
        let started = Instant::now();
        let message = fixture.load().expect_err("must not load").to_string();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(message.contains("it is not a regular file"), "{message}");
    }
}
