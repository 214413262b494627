//! Hosts that go wrong or lie: one killed mid-run, unknown and wrong host
//! keys, a script that prints `unreachable`, escape sequences from a file
//! name, a component and its commands; and the cleanup kiln owes a host
//! when it is stopped (uploaded scripts removed, the ssh master closed,
//! even after kill -9).

use super::*;

#[test]
fn a_host_killed_mid_run_is_unreachable_while_the_others_pass() {
    let mut fleet = Fleet::start(3);
    let hosts: Vec<String> = (0..3).map(|i| host_name(&fleet, i)).collect();
    // Host 0 sleeps in validators[1] until the test kills it.
    std::fs::write(fleet.host(0).root().join("etc/kiln-stall"), "").unwrap();
    let report = fleet.scratch("report.json");
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(strings(&[
        "--forks",
        "3",
        // A safety net: a kill that went unnoticed fails as a timeout, not a hang.
        "--command-timeout",
        "60",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let mut running = spawn_validate(&fleet, &args);
    // Host names are padded to the longest one, so match the two parts.
    let stalled = |line: &str| {
        line.contains(&format!("] {} ", hosts[0])) && line.contains(" validators[1].script: check")
    };
    running.wait_for_line(stalled, Duration::from_secs(60));
    // Give the script a moment to be running remotely, then crash the host.
    thread::sleep(Duration::from_millis(500));
    let killed_at = running.started.elapsed();
    fleet.kill_host(0);
    let run = running.finish();
    eprintln!("killed at {killed_at:?}:\n{run}");
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "unreachable", "validators[1].script");
    run.assert_row(&hosts[1], "passed", "-");
    run.assert_row(&hosts[2], "passed", "-");
    assert!(
        run.elapsed < killed_at + Duration::from_secs(20),
        "kiln waited on the dead host:\n{run}"
    );
    let report = read_report(&report);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report:#}");
    let dead = report_target(&report, &hosts[0]);
    assert_eq!(dead["passed"], false, "{dead:#}");
    assert_eq!(dead["result"], "unreachable", "{dead:#}");
    assert_eq!(dead["error"]["validator"], "validators[1].script");
    let message = dead["error"]["message"].as_str().unwrap();
    assert!(message.contains("unreachable"), "{message}");
    for host in &hosts[1..] {
        let target = report_target(&report, host);
        assert_eq!(target["passed"], true, "{target:#}");
        assert_eq!(target["result"], "passed", "{target:#}");
        assert_eq!(target["validators"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn unknown_and_wrong_host_keys_are_refused() {
    let fleet = Fleet::start(2);
    let (unknown, changed) = (fleet.host(0), fleet.host(1));
    let hosts = [host_name(&fleet, 0), host_name(&fleet, 1)];
    // Host 0 is not in known_hosts at all; host 1 is, with another key.
    let wrong_line = format!(
        "[{}]:{} {}",
        changed.address,
        changed.port,
        fleet.unrelated_public_key()
    );
    fleet.write_known_hosts(&wrong_line);
    let mut args = host_args(&fleet, &[0, 1]);
    args.extend(strings(&[
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "unreachable", "-");
    run.assert_row(&hosts[1], "unreachable", "-");
    let known_hosts = fleet.known_hosts().display().to_string();
    let said = |host: &str, text: &str| run.lines_for(host).iter().any(|l| l.contains(text));
    let keyscan = format!(
        "ssh-keyscan -p {} {} >> {known_hosts}",
        unknown.port, unknown.address
    );
    assert!(said(&hosts[0], &keyscan), "{run}");
    assert!(said(&hosts[0], "--accept-new-host-keys"), "{run}");
    assert!(said(&hosts[1], "DIFFERS"), "{run}");
    let remove = format!("-R [{}]:{}", changed.address, changed.port);
    assert!(said(&hosts[1], &remove), "{run}");
    assert_eq!(unknown.accepted_logins() + changed.accepted_logins(), 0);

    // Accepting new keys admits host 0 and records its key; a changed key stays refused.
    args.push("--accept-new-host-keys".into());
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
    run.assert_row(&hosts[1], "unreachable", "-");
    assert!(
        run.lines_for(&hosts[1])
            .iter()
            .any(|l| l.contains("DIFFERS")),
        "{run}"
    );
    assert_eq!(changed.accepted_logins(), 0);
    let recorded = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    // Type and base64 only: ssh records the key without the comment.
    let real_key = unknown.known_hosts_line();
    let real_key: Vec<&str> = real_key.split_whitespace().skip(1).take(2).collect();
    let recorded_line = format!(
        "[{}]:{} {}",
        unknown.address,
        unknown.port,
        real_key.join(" ")
    );
    assert!(recorded.contains(&recorded_line), "{recorded}");
    assert!(
        recorded.contains(&wrong_line),
        "the wrong entry was replaced:\n{recorded}"
    );

    // The recorded key is trusted from now on, without the flag.
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 0, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
}

#[test]
fn a_script_that_says_unreachable_is_a_failure_not_an_unreachable_host() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    std::fs::write(fleet.host(0).root().join("etc/kiln-no-network"), "").unwrap();
    let report = fleet.scratch("report.json");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    // The host answered every command; only the script's own words mention unreachability.
    run.assert_row(&host, "failed", "validators[3].script");
    let report = read_report(&report);
    assert_eq!(
        report_target(&report, &host)["result"],
        "failed",
        "{report:#}"
    );
}

#[test]
fn what_a_component_and_its_commands_print_reaches_the_terminal_and_report_escaped() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    // The manifest's own name retitles the terminal. Its `attacks` type
    // runs a command whose text, env value and output carry escape
    // sequences; `narrow` is denied a command that carries one; then
    // `attacks` fails with, logs and notes escape sequences of its own.
    let manifest = fleet.scratch("site\u{1b}]0;owned\u{7}.yaml");
    let wasm = Path::new(kiln_test_components::KILN_HOSTILE_ATTACKS);
    let declare =
        |name: &str, keys: &str| format!("  {name}:\n    wasm: {}\n{keys}", wasm.display());
    std::fs::write(
        &manifest,
        [
            "validator_types:\n",
            &declare("attacks", "    grants: [exec]\n"),
            &declare("narrow", "    grants: [exec]\n    commands: ['true']\n"),
            "validators:\n",
            r#"  - attacks: {attack: command, command: "printf '\e]0;owned\a%s\\n' \"$GREETING\"", env: {GREETING: "\e[2Khello"}}"#,
            "\n  - any:\n",
            "      - narrow: {attack: command, command: \"echo \\e[2Kpwned\"}\n",
            "      - attacks: {attack: escapes}\n",
        ]
        .concat(),
    )
    .unwrap();
    let report = fleet.scratch("escapes.json");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "-vv",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]));
    // Not `validate()`: it echoes the arguments, hostile name and all.
    let run = spawn_validate(&fleet, &args).finish();
    assert_eq!(run.code, 1, "{run}");
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\u{9b}']),
            "raw terminal control on {stream}:\n{run}"
        );
    }
    for shown in [
        "with /",
        "site\\e]0;owned\\u{7}.yaml",
        // The command as it starts (-vv), its env entry quoted as shell text.
        "validators[0].attacks: $ env -- 'GREETING=\\e[2Khello' /bin/sh -c 'printf '\\''\\e]0;owned\\u{7}%s\\n'\\'' \"$GREETING\"'",
        // Its output (-vv), named by host and validator, and how it ended.
        format!("{host} validators[0].attacks | \\e]0;owned\\u{{7}}\\e[2Khello").as_str(),
        "validators[0].attacks: -> exit 0",
        // The denial, whole.
        "validators[1].any[0].narrow: FAILED: validator type `narrow` was denied running `echo \\e[2Kpwned`: it is outside the type's allowed command patterns",
        // What the component logged and failed with.
        "validators[1].any[1].attacks: \\e[1A\\e[2K\\e[32mPASSED\\e[0m everything",
        "FAILED: \\e[2K\\r\\e[32m✔ all validators passed\\e[0m\\nreally",
    ] {
        assert!(run.stdout.contains(shown), "`{shown}` is not in:\n{run}");
    }
    run.assert_row(&host, "failed", "validators[1].any");

    let raw = std::fs::read_to_string(&report).expect("the report");
    // serde_json would write a control character as \u001b: none may be there.
    assert!(
        !raw.contains("\\u001b") && !raw.contains("\\u0007") && !raw.contains('\u{1b}'),
        "{raw}"
    );
    let report = read_report(&report);
    assert!(
        report["manifest"]
            .as_str()
            .unwrap()
            .ends_with("site\\e]0;owned\\u{7}.yaml"),
        "{report:#}"
    );
    let target = report_target(&report, &host);
    let ran = validator(target, "validators[0].attacks");
    assert_eq!(ran["path"], "validators[0].attacks", "{report:#}");
    assert_eq!(
        ran["commands"],
        serde_json::json!([{
            "command": "printf '\\e]0;owned\\u{7}%s\\n' \"$GREETING\"",
            "env": [{"name": "GREETING", "value": "\\e[2Khello"}],
            "exit_code": 0,
            "error": null,
            "elapsed_seconds": ran["commands"][0]["elapsed_seconds"],
        }]),
        "{report:#}"
    );
    let denied = validator(target, "validators[1].any[0].narrow");
    assert_eq!(denied["path"], "validators[1].any[0].narrow", "{report:#}");
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("was denied running `echo \\e[2Kpwned`"),
        "{report:#}"
    );
    // A denied command never reaches the host.
    assert_eq!(denied["commands"], serde_json::json!([]), "{report:#}");
    let failed = validator(target, "validators[1].any[1].attacks");
    assert_eq!(
        failed["message"], "\\e[2K\\r\\e[32m✔ all validators passed\\e[0m\\nreally",
        "{report:#}"
    );
}

#[test]
fn ctrl_c_removes_uploaded_scripts_and_closes_the_ssh_master() {
    let fleet = Fleet::start(1);
    let (running, master) = stalled_run(&fleet);
    // SIGINT to kiln alone: the harder case, where the ssh client of the
    // sleeping command does not get the signal itself.
    // SAFETY: signalling the kiln process this test started.
    assert_eq!(
        unsafe { libc::kill(running.child.id() as i32, libc::SIGINT) },
        0
    );
    let run = running.finish();
    eprintln!("{run}");
    assert_eq!(run.code, 130, "{run}");
    assert!(run.stderr.contains("kiln: interrupted"), "{run}");
    run.assert_row(&host_name(&fleet, 0), "interrupted", "validators[1].script");
    assert!(!run.stdout.contains("unreachable"), "{run}");
    assert!(
        !run.stdout.contains("validators[2]"),
        "no validator starts after Ctrl-C:\n{run}"
    );
    // The script sleeps 120 s; kiln must not have waited for it.
    assert!(run.elapsed < Duration::from_secs(100), "{run}");
    assert_eq!(
        uploaded_scripts(&fleet, 0),
        Vec::<String>::new(),
        "the uploaded script was removed"
    );
    assert_eq!(wait_gone(&[master]), Vec::<u32>::new(), "the master closed");
}

#[test]
fn the_ssh_master_dies_with_kiln_even_after_kill_9() {
    let fleet = Fleet::start(1);
    let (mut running, master) = stalled_run(&fleet);
    // A killed kiln cannot remove its control directory; the test does.
    let cmdline = std::fs::read(format!("/proc/{master}/cmdline")).unwrap();
    let control_dir = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .find_map(|arg| arg.strip_prefix("ControlPath=").map(str::to_string))
        .map(|socket| PathBuf::from(socket).parent().unwrap().to_path_buf())
        .expect("the master names its control socket");
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    let alive = wait_gone(&[master]);
    let _ = std::fs::remove_dir_all(&control_dir);
    assert_eq!(alive, Vec::<u32>::new(), "the master outlived kiln");
}
