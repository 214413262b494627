//! `--timeout` and per-type limits stopping a slow script, and what a run
//! shows while it goes: live output, heartbeats, the terminal's status
//! line, and logs and reports that cover every validator.

use super::*;

// ---- --timeout and per-type limits ----

/// `--timeout` stops the whole run: the sleeping script is cut short
/// (kiln does not wait out its 120 s), no validator starts after it, the
/// uploaded script is removed, and the table, the closing line, the
/// message, the exit status and the report all say the run timed out.
#[test]
fn a_run_wide_timeout_stops_a_slow_script_and_says_so() {
    let fleet = Fleet::start(1);
    std::fs::write(fleet.host(0).root().join("etc/kiln-stall"), "").unwrap();
    let report = fleet.scratch("timeout-report.json");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--timeout",
        "20s",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    let host = host_name(&fleet, 0);
    assert_eq!(run.code, 124, "{run}");
    assert!(
        run.stderr
            .contains("kiln: timed out after 20s; 1 of 1 hosts were started"),
        "{run}"
    );
    assert!(
        run.stdout.contains("0 of 1 hosts passed in")
            && run.stdout.contains("; timed out after 20s"),
        "the closing line says it:\n{run}"
    );
    run.assert_row(&host, "timed-out", "validators[1].script");
    assert!(
        !run.stdout.contains("validators[2]"),
        "no validator starts after the deadline:\n{run}"
    );
    assert_eq!(uploaded_scripts(&fleet, 0), Vec::<String>::new());
    let report = read_report(&report);
    assert_eq!(report["exit_code"], 124, "{report:#}");
    assert_eq!(
        report["error"]
            .as_str()
            .map(|e| e.contains("timed out after 20s")),
        Some(true),
        "{report:#}"
    );
    let target = report_target(&report, &host);
    assert_eq!(target["result"], "timed-out", "{target:#}");
    assert_eq!(
        validator(target, "validators[0].package")["status"],
        "passed"
    );
    assert_eq!(
        validator(target, "validators[1].script")["status"],
        "failed"
    );
    assert_eq!(
        validator(target, "validators[2].script")["status"],
        "not run"
    );
}

/// A built-in type has no wall clock of its own (Sahara had none); a
/// manifest's limits-only declaration, or a config file's
/// `[kiln_limits]`, gives it one without replacing its component.
#[test]
fn a_limit_set_for_a_built_in_stops_a_sleeping_script() {
    let fleet = Fleet::start(1);
    let dir = tempfile::tempdir().unwrap();
    let script = "  - script:\n      nap:\n        inline: sleep 60\n  - script:\n      after:\n        inline: 'true'\n";
    let limited = dir.path().join("limited.yaml");
    std::fs::write(
        &limited,
        format!("validator_types:\n  script:\n    limits: {{seconds: 1}}\nvalidators:\n{script}"),
    )
    .unwrap();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, format!("validators:\n{script}")).unwrap();
    let conf = dir.path().join("kiln.conf");
    std::fs::write(&conf, "[kiln_limits]\nscript = 1s\n").unwrap();
    let host = host_name(&fleet, 0);
    for (what, manifest, extra) in [
        ("a manifest declaration", &limited, vec![]),
        (
            "[kiln_limits]",
            &plain,
            vec!["--config-file", conf.to_str().unwrap()],
        ),
    ] {
        let mut args = host_args(&fleet, &[0]);
        args.extend(strings(&extra));
        args.extend(strings(&["--manifest", manifest.to_str().unwrap()]));
        let run = validate(&fleet, &args);
        assert_eq!(run.code, 1, "{what}: {run}");
        run.assert_row(&host, "failed", "validators[0].script");
        assert!(
            run.stderr
                .contains("validator type `script` was stopped at its wall-clock limit of 1 s")
                || run
                    .stdout
                    .contains("validator type `script` was stopped at its wall-clock limit of 1 s"),
            "{what}: {run}"
        );
        assert!(
            !run.stdout.contains("validators[1].script: passed"),
            "{what}: {run}"
        );
    }
}

// ---- live output, logs and reports ----

/// A manifest whose first script prints a line, then waits for the test
/// to create /etc/kiln-go before printing another: kiln must show the
/// first line while the command still runs. Then a branch that is not
/// taken, a package that is not installed (the failure), and a validator
/// the failure keeps from running.
const LIVE_MANIFEST: &str = "validators:
  - script:
      wait-for-go:
        inline: 'echo first; echo to-stderr >&2; while [ ! -e /etc/kiln-go ]; do sleep 0.2; done; echo second'
  - os_case:
      - redhat:
          - script: {never: {inline: 'true'}}
  - package: kiln-no-such-package
  - script: {after: {inline: 'true'}}
";

#[test]
fn output_streams_heartbeats_come_and_reports_and_logs_cover_every_validator() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    let unreachable = "root@127.0.0.1:1";
    let go = fleet.host(0).root().join("etc/kiln-go");
    let manifest = fleet.scratch("live.yaml");
    std::fs::write(&manifest, LIVE_MANIFEST).unwrap();
    let report = fleet.scratch("live.json");
    let log = fleet.scratch("live.log");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--host",
        unreachable,
        "-vv",
        // A safety net: a line that never streams fails as a timeout, not a hang.
        "--command-timeout",
        "120",
        "--report",
        report.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]));

    // (1) -vv, a heartbeat every second: the first line arrives while the
    // command waits for the test, and so does a heartbeat naming it.
    let mut running = spawn_validate_with(&fleet, &args, &[("KILN_HEARTBEAT", "1")]);
    let first = format!("{host} validators[0].script | first");
    running.wait_for_line(|line| line.contains(&first), Duration::from_secs(60));
    let beat = format!("still running {host} validators[0].script (");
    running.wait_for_line(|line| line.contains(&beat), Duration::from_secs(60));
    std::fs::write(&go, "").unwrap();
    let run = running.finish();
    assert_eq!(run.code, 1, "{run}");
    for line in [
        format!("{host} validators[0].script ! to-stderr"),
        format!("{host} validators[0].script | second"),
        format!("{host} validators[2].package ! dpkg-query: package 'kiln-no-such-package' is not installed"),
    ] {
        assert!(run.stdout.contains(&line), "`{line}` is not in:\n{run}");
    }
    // The first line came before the command ended (it waited for the test).
    let at = |text: &str| {
        run.stdout
            .find(text)
            .unwrap_or_else(|| panic!("{text}:\n{run}"))
    };
    assert!(at(&first) < at("validators[0].script: -> exit 0"), "{run}");
    // Off a terminal there is never a status line to redraw.
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\r'),
        "{run}"
    );

    let json = read_report(&report);
    assert_eq!(json["exit_code"], 1);
    let target = report_target(&json, &host);
    assert_eq!(target["result"], "failed", "{target:#}");
    for (path, status) in [
        ("validators[0].script", "passed"),
        ("validators[1].os_case", "passed"),
        ("validators[1].os_case[0].redhat[0].script", "skipped"),
        ("validators[2].package", "failed"),
        ("validators[3].script", "not run"),
    ] {
        assert_eq!(
            validator(target, path)["status"],
            status,
            "{path}: {target:#}"
        );
    }
    let gone = report_target(&json, unreachable);
    assert_eq!(gone["result"], "unreachable", "{gone:#}");
    assert_eq!(gone["validators"].as_array().unwrap().len(), 5, "{gone:#}");
    assert!(gone["validators"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "not run"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&first) && text.contains(&beat), "{text}");

    // (2) No -v, JUnit: the terminal shows no command, the log has every
    // command in full with its environment entries, exit code and output.
    let junit = fleet.scratch("live.xml");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--host",
        unreachable,
        "--report",
        junit.to_str().unwrap(),
        "--report-format",
        "junit",
        "--log-file",
        log.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]));
    let run = spawn_validate_with(&fleet, &args, &[("KILN_HEARTBEAT", "0")]).finish();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        !run.stdout.contains("| first") && !run.stdout.contains("$ "),
        "{run}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for wanted in [
        "validators[0].script: $ env -- test_only=1 ",
        "validators[0].script | first",
        "validators[0].script ! to-stderr",
        "validators[0].script | second",
        "validators[2].package: $ dpkg -s kiln-no-such-package  -> exit 1",
        "validators[2].package ! dpkg-query: package 'kiln-no-such-package' is not installed",
        "kiln-no-such-package",
    ] {
        assert!(
            text.contains(wanted),
            "`{wanted}` is not in the log:\n{text}"
        );
    }
    let xml = reports::valid_junit_report(&junit);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(xml.contains("<testcase name=\"(connect)\""), "{xml}");
    assert!(xml.contains("<failure type=\"failed\""), "{xml}");
}

/// The run under a pseudo-terminal (util-linux `script`), its output read
/// as it comes: the live status line is drawn there, and cleared.
#[test]
fn a_terminal_gets_a_live_status_line() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    let manifest = fleet.scratch("live.yaml");
    std::fs::write(&manifest, LIVE_MANIFEST).unwrap();
    let ssh_config = fleet.options().ssh_config.expect("fleet ssh_config");
    let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
    let line = [
        env!("CARGO_BIN_EXE_kiln"),
        "validate",
        "-F",
        ssh_config.to_str().unwrap(),
        "--host",
        &host,
        // The status line is drawn whatever the colour setting; without
        // colour the progress lines read as plain text here.
        "--color",
        "never",
        "--manifest",
        manifest.to_str().unwrap(),
    ]
    .map(quote)
    .join(" ");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    let (sender, chunks) = mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let status = "\u{1b}[2K[";
    let step = format!("{host} validators[0].script (");
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(status) && text.contains(&step) {
            break;
        }
        match chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => {
                let _ = child.kill();
                panic!("no status line naming {step}:\n{text:?}");
            }
        }
    }
    std::fs::write(fleet.host(0).root().join("etc/kiln-go"), "").unwrap();
    while let Ok(chunk) = chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.extend(chunk);
    }
    let code = child.wait().unwrap().code();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(code, Some(1), "{text:?}");
    // Every status line is cleared before the next line is printed: the
    // progress lines themselves arrive whole.
    assert!(
        text.contains("\r\u{1b}[2K["),
        "the status line is never cleared:\n{text:?}"
    );
    assert!(text.contains("FAILED: validators[2].package"), "{text:?}");
    assert!(text.contains("0 of 1 hosts passed"), "{text:?}");
}
