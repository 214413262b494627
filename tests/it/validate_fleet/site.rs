//! The site manifest walked through test-only, reconcile and test-only
//! again across three hosts (one made to differ), with host lists from
//! `--host`, an Ansible INI and a YAML inventory.

use super::*;

#[test]
fn the_site_manifest_checks_reconciles_and_rechecks_a_fleet() {
    let fleet = Fleet::start(3);
    let hosts: Vec<String> = (0..3).map(|i| host_name(&fleet, i)).collect();
    let manifest = fixture("site/image.yaml");
    let pin = fleet
        .host(2)
        .root()
        .join("etc/apt/preferences.d/kiln-no-file");
    std::fs::write(&pin, PIN_OUT_FILE).unwrap();
    let site_args = |extra: &[&str]| {
        let mut args = strings(&["--manifest", manifest.to_str().unwrap()]);
        args.extend(strings(&["--arg", "greeting=ahoy", "--forks", "3"]));
        args.extend(strings(extra));
        args
    };

    // (a) Clean hosts lack the packages: every host fails, named, at the package validator.
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(site_args(&[]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    for host in &hosts {
        run.assert_row(host, "failed", "validators[1].package");
        assert!(
            run.lines_for(host)
                .iter()
                .any(|l| l.contains("FAILED: validators[1].package") && l.contains("less")),
            "no failure line for {host}:\n{run}"
        );
        assert_eq!(run.row(host)[1], "debian", "{run}");
    }
    assert!(run.stdout.contains("0 of 3 hosts passed"), "{run}");
    assert!(!greeting_file(&fleet, 0).exists(), "test-only wrote a file");

    // (i) Reconciling: host 2 cannot install `file`; hosts 0 and 1 finish all the same.
    let first_report = fleet.scratch("reconcile-1.json");
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(site_args(&[
        "--reconcile",
        "--report",
        first_report.to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
    run.assert_row(&hosts[1], "passed", "-");
    run.assert_row(&hosts[2], "failed", "validators[1].package");
    assert!(greeting_file(&fleet, 0).exists() && greeting_file(&fleet, 1).exists());
    assert!(
        !greeting_file(&fleet, 2).exists(),
        "host 2 went on past its failure"
    );
    // (h) One report entry per host, with passed/error/validators.
    let report = read_report(&first_report);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report:#}");
    assert_eq!(report["passed"], false);
    assert_eq!(report["test_only"], false);
    for host in &hosts[..2] {
        let target = report_target(&report, host);
        assert_eq!(target["passed"], true, "{target:#}");
        assert!(target["error"].is_null(), "{target:#}");
        assert_eq!(
            validator(target, "validators[1].package")["status"],
            "changed",
            "{target:#}"
        );
    }
    let failed = report_target(&report, &hosts[2]);
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert_eq!(failed["result"], "failed", "{failed:#}");
    assert_eq!(failed["error"]["validator"], "validators[1].package");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("no installation candidate"), "{message}");

    // (b) With the pin gone, reconciling fixes host 2 and leaves the others as they are.
    std::fs::remove_file(&pin).unwrap();
    let second_report = fleet.scratch("reconcile-2.json");
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(site_args(&[
        "--reconcile",
        "--report",
        second_report.to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 0, "{run}");
    for host in &hosts {
        run.assert_row(host, "passed", "-");
    }
    let report = read_report(&second_report);
    assert_eq!(report["passed"], true);
    let package_status = |host: &str| {
        validator(report_target(&report, host), "validators[1].package")["status"].clone()
    };
    assert_eq!(package_status(&hosts[0]), "passed", "{report:#}");
    assert_eq!(package_status(&hosts[2]), "changed", "{report:#}");

    // (c, g) Test-only now passes everywhere, hosts named by an Ansible INI inventory.
    let ini = fleet.scratch("hosts.ini");
    std::fs::write(&ini, ini_inventory(&fleet)).unwrap();
    let run = validate(&fleet, &site_args(&["--inventory", ini.to_str().unwrap()]));
    assert_eq!(run.code, 0, "{run}");
    for host in &hosts {
        run.assert_row(host, "passed", "-");
    }
    assert!(run.stdout.contains("3 of 3 hosts passed"), "{run}");
    // What the manifest wrote is really on each host.
    let copied = std::fs::read(fixture("site/motd-check.sh")).unwrap();
    for index in 0..3 {
        let version = in_chroot(
            &fleet,
            index,
            &["dpkg-query", "-W", "-f", "${Version}", "less"],
        );
        assert!(!version.is_empty());
        let greeting = std::fs::read_to_string(greeting_file(&fleet, index)).unwrap();
        assert_eq!(
            greeting,
            format!("ahoy from less {version}\n"),
            "host {index}"
        );
        let root = fleet.host(index).root();
        assert_eq!(
            std::fs::read(root.join("tmp/motd-check.sh")).unwrap(),
            copied
        );
        assert!(root.join("usr/bin/file").exists() && root.join("usr/bin/less").exists());
    }

    // (i, g, h) Someone edits host 1's file: only host 1 fails (YAML inventory this time).
    std::fs::write(greeting_file(&fleet, 1), "hand-edited\n").unwrap();
    let yaml = fleet.scratch("hosts.yaml");
    std::fs::write(&yaml, yaml_inventory(&fleet)).unwrap();
    let last_report = fleet.scratch("recheck.json");
    let run = validate(
        &fleet,
        &site_args(&[
            "--inventory",
            yaml.to_str().unwrap(),
            "--report",
            last_report.to_str().unwrap(),
        ]),
    );
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
    run.assert_row(&hosts[1], "failed", "validators[3].script");
    run.assert_row(&hosts[2], "passed", "-");
    assert!(run.stdout.contains("2 of 3 hosts passed"), "{run}");
    let report = read_report(&last_report);
    assert_eq!(report["test_only"], true);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report:#}");
    let edited = report_target(&report, &hosts[1]);
    assert_eq!(edited["passed"], false);
    assert_eq!(edited["error"]["validator"], "validators[3].script");
    let message = edited["error"]["message"].as_str().unwrap();
    assert!(message.contains("holds 'hand-edited'"), "{message}");
    // Test-only left the edit alone.
    assert_eq!(
        std::fs::read_to_string(greeting_file(&fleet, 1)).unwrap(),
        "hand-edited\n"
    );
}

/// The fleet as an Ansible INI inventory: a group with per-host addresses
/// and ports, and the user from the group's vars.
fn ini_inventory(fleet: &Fleet) -> String {
    let mut text = String::from("# fleet test inventory\n[site]\n");
    for (index, host) in fleet.hosts.iter().enumerate() {
        text.push_str(&format!(
            "node{index} ansible_host={} ansible_port={}\n",
            host.address, host.port
        ));
    }
    text.push_str("\n[site:vars]\nansible_user=root\n");
    text
}

/// The fleet as an Ansible YAML inventory, hosts under a child group.
fn yaml_inventory(fleet: &Fleet) -> String {
    let mut text = String::from(
        "all:\n  vars:\n    ansible_user: root\n  children:\n    site:\n      hosts:\n",
    );
    for (index, host) in fleet.hosts.iter().enumerate() {
        text.push_str(&format!(
            "        node{index}:\n          ansible_host: {}\n          ansible_port: {}\n",
            host.address, host.port
        ));
    }
    text
}
