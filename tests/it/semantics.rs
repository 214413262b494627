//! Sahara's semantics, case by case (the behaviours its unit tests for
//! `sahara.plugins.images` pin down), run through the real built-in
//! components against the in-memory scripted remote: the exact commands
//! sent, their order, call counts and argument effects.

use crate::support;

use kiln::interpreter::{RunError, Status};
use kiln::remote::scripted::{Call, ScriptedRemote};
use kiln::remote::CommandOutput;
use support::{run, Fixture};

fn ok() -> CommandOutput {
    CommandOutput::success("")
}

fn fail(message: &str) -> CommandOutput {
    CommandOutput::failure(1, message)
}

fn failure_message(summary: &kiln::interpreter::RunSummary) -> String {
    match &summary.outcome {
        Err(e) => e.to_string(),
        Ok(()) => panic!("the run should have failed"),
    }
}

const DNF_OR_YUM: &str = "if command -v dnf >/dev/null 2>&1; then dnf install -y java-8 hadoop; else yum install -y java-8 hadoop; fi";

// ---- package ----

#[test]
fn package_test_only_sends_one_check_for_the_whole_list() {
    let remote = ScriptedRemote::new("centos");
    let summary = run(
        "validators:\n  - package:\n    - java: {version: 8}\n    - hadoop\n",
        &[],
        &remote,
        &[],
        true,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.commands(), ["rpm -q java-8 hadoop"]);
}

#[test]
fn package_test_only_failure_carries_the_remote_message() {
    let remote =
        ScriptedRemote::new("ubuntu").on("dpkg -s", [fail("package 'java-8' is not installed")]);
    let summary = run(
        "validators:\n  - package: [{java: {version: 8}}, hadoop]\n",
        &[],
        &remote,
        &[],
        true,
    );
    assert_eq!(remote.commands(), ["dpkg -s java-8 hadoop"]);
    let message = failure_message(&summary);
    assert!(
        message.contains("package 'java-8' is not installed"),
        "{message}"
    );
    assert!(message.contains("validators[0].package"), "{message}");
}

#[test]
fn package_reconcile_checks_installs_and_checks_again() {
    let remote = ScriptedRemote::new("centos").on("rpm -q", [fail("not installed"), ok()]);
    let summary = run(
        "validators:\n  - package: [{java: {version: '8'}}, hadoop]\n",
        &[],
        &remote,
        &[],
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        remote.commands(),
        ["rpm -q java-8 hadoop", DNF_OR_YUM, "rpm -q java-8 hadoop"]
    );
    let leaf = &summary.leaf_results()[0];
    assert_eq!(
        leaf.status,
        Status::Changed(vec!["installed java-8 hadoop".into()])
    );
}

#[test]
fn package_reconcile_stops_when_the_install_fails() {
    let remote = ScriptedRemote::new("ubuntu")
        .on("dpkg -s", [fail("not installed")])
        .on(
            "DEBIAN_FRONTEND",
            [fail("E: Unable to locate package hadoop")],
        );
    let summary = run(
        "validators:\n  - package: hadoop\n",
        &[],
        &remote,
        &[],
        false,
    );
    assert_eq!(
        remote.commands(),
        [
            "dpkg -s hadoop",
            "DEBIAN_FRONTEND=noninteractive apt-get -y install hadoop"
        ]
    );
    assert!(failure_message(&summary).contains("Unable to locate package hadoop"));
}

#[test]
fn package_already_installed_is_one_call_and_in_place() {
    let remote = ScriptedRemote::new("debian");
    let summary = run(
        "validators:\n  - package: hadoop\n",
        &[],
        &remote,
        &[],
        false,
    );
    assert_eq!(remote.commands(), ["dpkg -s hadoop"]);
    assert_eq!(summary.leaf_results()[0].status, Status::InPlace);
}

#[test]
fn package_on_an_unknown_distro_fails_clearly() {
    let remote = ScriptedRemote::new("plan9");
    let summary = run(
        "validators:\n  - package: hadoop\n",
        &[],
        &remote,
        &[],
        true,
    );
    assert!(remote.commands().is_empty());
    let message = failure_message(&summary);
    assert!(
        message.contains("does not know the package manager of distro `plan9`"),
        "{message}"
    );
    assert!(
        message.contains("debian, redhat, suse, alpine, arch, mageia, void, altlinux"),
        "the message lists the supported families: {message}"
    );
}

/// Every package manager, as a distro of its family reports itself: the
/// check and the install for `[{java: {version: 8}}, hadoop]`.
const PACKAGE_MANAGERS: &[(&str, &str, &str)] = &[
    (
        "ubuntu",
        "dpkg -s java-8 hadoop",
        "DEBIAN_FRONTEND=noninteractive apt-get -y install java-8 hadoop",
    ),
    ("centos", "rpm -q java-8 hadoop", DNF_OR_YUM),
    ("almalinux", "rpm -q java-8 hadoop", DNF_OR_YUM),
    ("redhat-based", "rpm -q java-8 hadoop", DNF_OR_YUM),
    (
        "opensuse-leap",
        "rpm -q java-8 hadoop",
        "zypper --non-interactive install --auto-agree-with-licenses java-8 hadoop",
    ),
    (
        "sles",
        "rpm -q java-8 hadoop",
        "zypper --non-interactive install --auto-agree-with-licenses java-8 hadoop",
    ),
    (
        "alpinelinux",
        "apk info -e java-8 hadoop",
        "apk add --update-cache java-8 hadoop",
    ),
    (
        "arch",
        "pacman -Q java-8 hadoop",
        "pacman -S --noconfirm --needed java-8 hadoop",
    ),
    ("mageia", "rpm -q java-8 hadoop", "urpmi --auto java-8 hadoop"),
    (
        "voidlinux",
        "for p in java-8 hadoop; do xbps-query \"$p\" >/dev/null || { echo \"package $p is not installed\" >&2; exit 1; }; done",
        "xbps-install -Sy java-8 hadoop",
    ),
    (
        "altlinux",
        "rpm -q java-8 hadoop",
        "apt-get -y install java-8 hadoop",
    ),
];

const JAVA_AND_HADOOP: &str = "validators:\n  - package: [{java: {version: 8}}, hadoop]\n";

#[test]
fn package_checks_with_each_managers_one_command() {
    for (distro, check, _) in PACKAGE_MANAGERS {
        let remote = ScriptedRemote::new(distro);
        let summary = run(JAVA_AND_HADOOP, &[], &remote, &[], true);
        assert!(summary.passed(), "{distro}: {:?}", summary.outcome);
        assert_eq!(remote.commands(), [*check], "distro {distro}");
    }
}

#[test]
fn package_installs_with_each_managers_command_and_checks_again() {
    for (distro, check, install) in PACKAGE_MANAGERS {
        let remote = ScriptedRemote::new(distro).on(check, [fail("not installed"), ok()]);
        let summary = run(JAVA_AND_HADOOP, &[], &remote, &[], false);
        assert!(summary.passed(), "{distro}: {:?}", summary.outcome);
        assert_eq!(
            remote.commands(),
            [*check, *install, *check],
            "distro {distro}"
        );
    }
}

#[test]
fn package_test_only_never_installs_on_any_manager() {
    for (distro, check, _) in PACKAGE_MANAGERS {
        let remote = ScriptedRemote::new(distro).on(check, [fail("package hadoop is missing")]);
        let summary = run(JAVA_AND_HADOOP, &[], &remote, &[], true);
        assert_eq!(remote.commands(), [*check], "distro {distro}");
        let message = failure_message(&summary);
        assert!(message.contains("package hadoop is missing"), "{message}");
    }
}

#[test]
fn package_on_gentoo_names_portage_and_runs_nothing() {
    let remote = ScriptedRemote::new("gentoo");
    let summary = run(JAVA_AND_HADOOP, &[], &remote, &[], false);
    assert!(remote.commands().is_empty());
    let message = failure_message(&summary);
    assert!(
        message.contains("does not install on distro `gentoo`") && message.contains("portage"),
        "{message}"
    );
}

// ---- script ----

#[test]
fn script_is_written_run_with_its_environment_and_removed() {
    let remote = ScriptedRemote::new("ubuntu");
    let yaml = "arguments:\n  java-distro: {default: openjdk}\n  unused: {default: x}\nvalidators:\n  - script:\n      setup.sh:\n        env_vars: [java-distro]\n";
    let summary = run(
        yaml,
        &[("setup.sh", "#!/bin/sh\necho hi\n")],
        &remote,
        &[],
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    let calls = remote.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let Call::Write {
        path,
        contents,
        mode,
    } = &calls[0]
    else {
        panic!("first the script is written: {calls:?}")
    };
    assert!(path.starts_with("/tmp/kiln-script-"), "{path}");
    assert_eq!(contents, b"#!/bin/sh\necho hi\n");
    assert_eq!(*mode, Some(0o755));
    let Call::Run(command) = &calls[1] else {
        panic!("then it runs")
    };
    assert_eq!(
        command.script,
        format!("{path}; status=$?; rm -f {path}; exit $status")
    );
    let env: Vec<(&str, &str)> = command
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("test_only", "0"),
            ("distro", "ubuntu"),
            ("java_distro", "openjdk")
        ]
    );
}

/// The shebang decides: a script with one is executed as written; one
/// without runs under the target's `/bin/sh`, as Sahara's image runs did.
#[test]
fn script_without_a_shebang_runs_under_bin_sh() {
    for (contents, started) in [
        ("#!/bin/bash\n[[ -n x ]]\n", ""),
        ("echo no shebang\n", "/bin/sh "),
        (" #!/bin/bash\necho not a shebang\n", "/bin/sh "),
    ] {
        let remote = ScriptedRemote::new("debian");
        let summary = run(
            "validators:\n  - script: s.sh\n",
            &[("s.sh", contents)],
            &remote,
            &[],
            false,
        );
        assert!(summary.passed(), "{:?}", summary.outcome);
        let calls = remote.calls();
        let Call::Write { path, .. } = &calls[0] else {
            panic!("first the script is written: {calls:?}")
        };
        assert_eq!(
            calls[1].command().unwrap(),
            format!("{started}{path}; status=$?; rm -f {path}; exit $status"),
            "{contents:?}"
        );
    }
}

#[test]
fn script_values_travel_literally_not_through_the_shell() {
    let remote = ScriptedRemote::new("debian");
    let hostile = "x'; touch /pwned; echo '$(reboot)`id`";
    let yaml =
        "arguments:\n  v: {default: safe}\nvalidators:\n  - script:\n      s.sh: {env_vars: [v]}\n";
    run(yaml, &[("s.sh", "echo")], &remote, &[("v", hostile)], true);
    let Call::Run(command) = &remote.calls()[1] else {
        panic!()
    };
    assert_eq!(command.env[2], ("v".to_string(), hostile.to_string()));
    assert!(!command.script.contains("pwned"));
    let line = command.to_shell_line();
    assert!(
        line.contains(r#"'v=x'\''; touch /pwned; echo '\''$(reboot)`id`'"#),
        "{line}"
    );
}

#[test]
fn script_output_becomes_an_argument_for_later_validators() {
    let remote = ScriptedRemote::new("debian").on(
        "/bin/sh /tmp/kiln-script-",
        [CommandOutput::success("1.8.0\n")],
    );
    let yaml = "validators:\n  - script:\n      detect:\n        inline: java -version\n        output: java_version\n  - argument_case:\n      argument_name: java_version\n      cases:\n        1.8.0:\n          - package: java8-extras\n";
    let summary = run(yaml, &[], &remote, &[], true);
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        summary.arguments.get("java_version").map(String::as_str),
        Some("1.8.0")
    );
    assert_eq!(remote.commands().last().unwrap(), "dpkg -s java8-extras");
}

#[test]
fn script_output_may_overwrite_distro() {
    let remote = ScriptedRemote::new("debian").on(
        "/bin/sh /tmp/kiln-script-",
        [CommandOutput::success("centos")],
    );
    let yaml = "validators:\n  - script:\n      fake:\n        - inline: echo centos\n        - output: distro\n  - package: x\n";
    run(yaml, &[], &remote, &[], true);
    assert_eq!(remote.commands().last().unwrap(), "rpm -q x");
}

#[test]
fn script_failure_names_the_script_and_exit_code() {
    let remote = ScriptedRemote::new("debian").on(
        "/bin/sh /tmp/kiln-script-",
        [CommandOutput::failure(3, "boom\n")],
    );
    let summary = run(
        "validators:\n  - script: s.sh\n",
        &[("s.sh", "exit 3")],
        &remote,
        &[],
        false,
    );
    let message = failure_message(&summary);
    assert!(
        message.contains("script `s.sh` exited with 3: boom"),
        "{message}"
    );
}

#[test]
fn script_gets_test_only_1_in_test_only_mode() {
    let remote = ScriptedRemote::new("debian");
    run(
        "validators:\n  - script: {s.sh: {arguments: [distro]}}\n",
        &[("s.sh", "x")],
        &remote,
        &[],
        true,
    );
    let Call::Run(command) = &remote.calls()[1] else {
        panic!()
    };
    assert_eq!(
        command.env,
        [
            ("test_only".into(), "1".into()),
            ("distro".into(), "debian".into())
        ]
    );
}

// ---- copy_script ----

/// Sahara copied the file in both modes, and MapR's later scripts read it:
/// a test-only run copies a missing or different file to scratch space
/// (the same `/tmp/<name>`) and passes without reporting a change.
#[test]
fn copy_script_copies_in_both_modes_and_changes_nothing_in_test_only() {
    let files = [("common/resources/packages.json", "{}\n")];
    let yaml = "validators:\n  - copy_script: common/resources/packages.json\n";
    let copied = || Call::Write {
        path: "/tmp/packages.json".into(),
        contents: b"{}\n".to_vec(),
        mode: Some(0o755),
    };
    let read = || Call::Read("/tmp/packages.json".into());

    // Missing, test-only: read, then copied; passed, not changed.
    let remote = ScriptedRemote::new("debian");
    let summary = run(yaml, &files, &remote, &[], true);
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.calls(), [read(), copied()]);
    assert_eq!(remote.file("/tmp/packages.json").unwrap(), b"{}\n");
    assert_eq!(summary.leaf_results()[0].status, Status::InPlace);

    // Different, test-only: overwritten, still passed without a change.
    let remote = ScriptedRemote::new("debian").with_file("/tmp/packages.json", b"other");
    let summary = run(yaml, &files, &remote, &[], true);
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.calls(), [read(), copied()]);
    assert_eq!(remote.file("/tmp/packages.json").unwrap(), b"{}\n");
    assert_eq!(summary.leaf_results()[0].status, Status::InPlace);

    // Already there, either mode: only read.
    for test_only in [true, false] {
        let remote = ScriptedRemote::new("debian").with_file("/tmp/packages.json", b"{}\n");
        let summary = run(yaml, &files, &remote, &[], test_only);
        assert!(summary.passed(), "{:?}", summary.outcome);
        assert_eq!(remote.calls(), [read()], "test_only={test_only}");
        assert_eq!(summary.leaf_results()[0].status, Status::InPlace);
    }

    // Missing, reconciling: copied and reported as a change.
    let remote = ScriptedRemote::new("debian");
    let summary = run(yaml, &files, &remote, &[], false);
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.calls(), [read(), copied()]);
    assert_eq!(
        summary.leaf_results()[0].status,
        Status::Changed(vec!["wrote /tmp/packages.json".into()])
    );
}

// ---- any / all ----

fn any_of(a: &str, b: &str) -> String {
    format!("validators:\n  - any:\n    - package: {a}\n    - package: {b}\n")
}

fn count(remote: &ScriptedRemote, needle: &str) -> usize {
    remote
        .commands()
        .iter()
        .filter(|c| c.split_whitespace().any(|w| w == needle))
        .count()
}

#[test]
fn any_with_two_failing_children_in_reconcile_calls_each_twice() {
    // Installs fail too, so each child fails in both passes.
    let remote = ScriptedRemote::new("debian")
        .on("dpkg -s", [fail("no")])
        .on("DEBIAN_FRONTEND", [fail("no")]);
    let summary = run(&any_of("a", "b"), &[], &remote, &[], false);
    let dpkg: Vec<String> = remote
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("dpkg"))
        .collect();
    assert_eq!(dpkg, ["dpkg -s a", "dpkg -s b", "dpkg -s a", "dpkg -s b"]);
    let message = failure_message(&summary);
    assert!(
        message.contains("[0]") && message.contains("[1]"),
        "every child's error is listed: {message}"
    );
}

#[test]
fn any_with_two_failing_children_in_test_only_calls_each_once() {
    let remote = ScriptedRemote::new("debian").on("dpkg -s", [fail("no")]);
    let summary = run(&any_of("a", "b"), &[], &remote, &[], true);
    assert!(!summary.passed());
    assert_eq!(remote.commands(), ["dpkg -s a", "dpkg -s b"]);
}

#[test]
fn any_settles_for_the_first_passing_child_without_reconciling() {
    let remote = ScriptedRemote::new("debian").on("dpkg -s a", [fail("no")]);
    let summary = run(&any_of("a", "b"), &[], &remote, &[], false);
    assert!(summary.passed());
    assert_eq!(remote.commands(), ["dpkg -s a", "dpkg -s b"]);
    assert_eq!((count(&remote, "a"), count(&remote, "b")), (1, 1));
}

#[test]
fn any_with_two_passing_children_calls_only_the_first() {
    let remote = ScriptedRemote::new("debian");
    run(&any_of("a", "b"), &[], &remote, &[], false);
    assert_eq!(remote.commands(), ["dpkg -s a"]);
}

#[test]
fn any_reconciles_the_first_child_that_can_be_fixed() {
    let remote = ScriptedRemote::new("debian")
        .on("dpkg -s b", [fail("no")])
        .on("dpkg -s a", [fail("no"), fail("no"), ok()]);
    let summary = run(&any_of("a", "b"), &[], &remote, &[], false);
    assert!(summary.passed(), "{:?}", summary.outcome);
    // test-only pass: a fails, b fails; reconcile pass: a is checked, installed, checked.
    assert_eq!(
        remote.commands(),
        [
            "dpkg -s a",
            "dpkg -s b",
            "dpkg -s a",
            "DEBIAN_FRONTEND=noninteractive apt-get -y install a",
            "dpkg -s a"
        ]
    );
}

#[test]
fn all_stops_at_the_first_failure() {
    let remote = ScriptedRemote::new("debian").on("dpkg -s b", [fail("no")]);
    let yaml = "validators:\n  - all:\n    - package: a\n    - package: b\n    - package: c\n";
    let summary = run(yaml, &[], &remote, &[], true);
    assert_eq!(remote.commands(), ["dpkg -s a", "dpkg -s b"]);
    let RunError::Validation(error) = summary.outcome.unwrap_err() else {
        panic!()
    };
    assert_eq!(
        error.path, "validators[0].all[1].package",
        "the innermost failing validator is named"
    );
}

// ---- os_case ----

const OS_CASE: &str = "validators:\n  - os_case:\n    - fedora:\n      - package: f\n    - redhat:\n      - package: r\n    - debian:\n      - package: d\n";

#[test]
fn os_case_runs_the_first_matching_distro_or_family() {
    for (distro, expected) in [
        ("fedora", "rpm -q f"),
        ("centos", "rpm -q r"),
        ("rocky", "rpm -q r"),
        ("ubuntu", "dpkg -s d"),
        ("debian", "dpkg -s d"),
        ("redhat-based", "rpm -q r"),
        ("oraclelinux", "rpm -q r"),
        ("ol", "rpm -q r"),
        ("amzn", "rpm -q r"),
        ("kalilinux", "dpkg -s d"),
        ("linuxmint", "dpkg -s d"),
    ] {
        let remote = ScriptedRemote::new(distro);
        run(OS_CASE, &[], &remote, &[], true);
        assert_eq!(remote.commands(), [expected], "distro {distro}");
    }
}

#[test]
fn os_case_without_a_match_runs_nothing_and_passes() {
    let remote = ScriptedRemote::new("arch");
    let summary = run(OS_CASE, &[], &remote, &[], true);
    assert!(summary.passed());
    assert!(remote.commands().is_empty());
}

#[test]
fn os_case_keys_name_the_newer_families_whatever_the_target_calls_them() {
    let yaml = "validators:\n  - os_case:\n    - suse:\n      - package: s\n    - alpine:\n      - package: a\n    - arch:\n      - package: p\n    - void:\n      - package: v\n    - mageia:\n      - package: m\n";
    for (distro, expected) in [
        ("opensuse-tumbleweed", "rpm -q s"),
        ("suse-based", "rpm -q s"),
        ("alpine", "apk info -e a"),
        ("alpinelinux", "apk info -e a"),
        ("archlinux", "pacman -Q p"),
        ("manjaro", "pacman -Q p"),
        ("mandriva", "rpm -q m"),
    ] {
        let remote = ScriptedRemote::new(distro);
        run(yaml, &[], &remote, &[], true);
        assert_eq!(remote.commands(), [expected], "distro {distro}");
    }
    let remote = ScriptedRemote::new("void");
    run(yaml, &[], &remote, &[], true);
    assert!(
        remote.commands()[0].contains("xbps-query"),
        "{:?}",
        remote.commands()
    );
}

// ---- argument_case / argument_set / arguments ----

#[test]
fn argument_case_on_an_unknown_argument_is_an_error() {
    let remote = ScriptedRemote::new("debian");
    let yaml = "validators:\n  - argument_case:\n      argument_name: nope\n      cases:\n        x:\n          - package: a\n";
    let summary = run(yaml, &[], &remote, &[], true);
    assert!(failure_message(&summary).contains("Argument nope not found"));
}

#[test]
fn argument_case_without_a_matching_case_runs_nothing() {
    let remote = ScriptedRemote::new("debian");
    let yaml = "arguments:\n  v: {default: other}\nvalidators:\n  - argument_case:\n      argument_name: v\n      cases:\n        x:\n          - package: a\n";
    let summary = run(yaml, &[], &remote, &[], true);
    assert!(summary.passed());
    assert!(remote.commands().is_empty());
}

#[test]
fn argument_set_changes_the_value_for_what_follows() {
    let remote = ScriptedRemote::new("debian");
    let yaml = "arguments:\n  v: {default: a}\nvalidators:\n  - argument_set: {argument_name: v, value: b}\n  - argument_case:\n      argument_name: v\n      cases:\n        a: [{package: pkg-a}]\n        b: [{package: pkg-b}]\n";
    let summary = run(yaml, &[], &remote, &[], true);
    assert_eq!(remote.commands(), ["dpkg -s pkg-b"]);
    assert_eq!(summary.arguments["v"], "b");
}

#[test]
fn the_guides_example_runs_in_test_only_and_reaches_nested_validators() {
    let remote = ScriptedRemote::new("centos").on("rpm -q java-1.8.0", [fail("no")]);
    let yaml = include_str!("../fixtures/guide-example.yaml");
    let summary = run(
        yaml,
        &[
            ("setup_java.sh", "true"),
            ("install_oracle_java.sh", "true"),
        ],
        &remote,
        &[],
        true,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(summary.arguments["java-version"], "1.7.0");
    let commands = remote.commands();
    assert_eq!(
        commands[..3],
        [
            "rpm -q nfs-utils",
            "rpm -q java-1.8.0-openjdk-devel",
            "rpm -q java-1.7.0-openjdk-devel"
        ]
    );
    assert!(commands
        .last()
        .unwrap()
        .starts_with("rpm -q hadoop hadoop-libhdfs"));
}

#[test]
fn arguments_required_default_and_choices() {
    let yaml = "arguments:\n  need: {required: true, description: x}\n  pick: {default: a, choices: [a, b]}\nvalidators: []\n";
    let remote = ScriptedRemote::new("debian");
    let summary = run(yaml, &[], &remote, &[], true);
    assert_eq!(
        failure_message(&summary),
        "Argument need is required for image processing"
    );
    assert!(
        remote.calls().is_empty(),
        "argument errors come before the target is touched"
    );

    let summary = run(yaml, &[], &remote, &[("need", "1"), ("pick", "c")], true);
    assert!(failure_message(&summary).starts_with("Value for argument pick must be one of a, b"));

    let summary = run(
        yaml,
        &[],
        &remote,
        &[("need", "1"), ("undeclared", "x")],
        true,
    );
    assert!(summary.passed());
    assert_eq!(summary.arguments["pick"], "a", "the default fills in");
    assert!(
        !summary.arguments.contains_key("undeclared"),
        "undeclared values are not passed on"
    );
    assert_eq!(summary.arguments["distro"], "debian");
}

#[test]
fn an_unreachable_target_fails_before_any_validator() {
    let remote = ScriptedRemote::new("debian").unreachable();
    let summary = run("validators:\n  - package: a\n", &[], &remote, &[], true);
    assert!(failure_message(&summary).starts_with("cannot detect the distro"));
}

#[test]
fn deep_failures_name_their_manifest_position() {
    let remote = ScriptedRemote::new("ubuntu").on("dpkg -s deep", [fail("missing")]);
    let yaml = "validators:\n  - os_case:\n      - ubuntu:\n          - package: ok\n          - all:\n              - package: deep\n";
    let fixture = Fixture::new(yaml, &[]);
    let manifest = fixture.manifest();
    let (summary, _) = support::kiln().run(
        &manifest,
        remote,
        &support::args(&[]),
        true,
        Box::new(kiln::interpreter::Quiet),
    );
    let RunError::Validation(error) = summary.outcome.unwrap_err() else {
        panic!()
    };
    assert_eq!(
        error.path,
        "validators[0].os_case[0].ubuntu[1].all[0].package"
    );
    assert_eq!((error.location.mark.line, error.location.mark.col), (6, 17));
}

#[test]
fn a_target_lost_mid_run_is_reported_unreachable_and_not_called_again() {
    let remote = ScriptedRemote::new("debian").lost_after(1);
    let yaml = "validators:\n  - package: a\n  - any:\n    - package: b\n    - package: c\n  - package: d\n";
    let summary = run(yaml, &[], &remote, &[], false);
    match summary.outcome {
        Err(RunError::Unreachable { validator, message }) => {
            assert_eq!(validator, "validators[1].any");
            assert!(message.contains("scripted as unreachable"), "{message}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    // `a` passed; `b` found the target gone; nothing was sent after that.
    assert_eq!(remote.commands(), ["dpkg -s a", "dpkg -s b"]);
}

// ---- what flow control reports ----

#[test]
fn flow_control_reports_its_childrens_changes() {
    // The os_case's package installs; the os_case and the root `all` carry
    // the change up instead of reading "already in place".
    let remote = ScriptedRemote::new("debian").on("dpkg -s", [fail("not installed"), ok()]);
    let summary = run(
        "validators:\n  - os_case:\n    - debian:\n      - package: d\n  - package: present\n",
        &[],
        &remote,
        &[],
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    let status_of = |path: &str| {
        summary
            .records
            .iter()
            .rev()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no record of {path}"))
            .status
            .clone()
    };
    let leaf = "validators[0].os_case[0].debian[0].package";
    assert_eq!(status_of(leaf), Status::Changed(vec!["installed d".into()]));
    assert_eq!(
        status_of("validators[0].os_case"),
        Status::Changed(vec![format!("{leaf}: installed d")])
    );
    // A sibling that changed nothing stays in place.
    assert_eq!(status_of("validators[1].package"), Status::InPlace);
}

#[test]
fn flow_control_with_nothing_changed_below_is_in_place() {
    let remote = ScriptedRemote::new("debian");
    let summary = run(
        "validators:\n  - os_case:\n    - debian:\n      - package: d\n",
        &[],
        &remote,
        &[],
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert!(summary.records.iter().all(|r| r.status == Status::InPlace));
}
