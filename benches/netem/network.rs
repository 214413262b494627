//! The netem benchmark's network: one network namespace per host, joined to
//! this (the root) namespace by a veth pair whose root end sits on a bridge,
//! all in a private /24 (bridge .1, host i at .(i+2)); and per host a
//! delaying relay process (`relay.rs`) listening on the host's address, port
//! [`PUBLIC_PORT`], in front of its sshd on [`SSHD_PORT`]. Names carry this
//! process's pid, so runs side by side never meet, and [`sweep_stale`]
//! removes what a killed run left. Dropping a [`Network`] stops the relays
//! and deletes the namespaces (their veths go with them) and the bridge.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where clients connect: the relay.
/// Not 22: known_hosts names a non-default port as `[address]:port`, which is
/// how the fleet writes every host.
pub const PUBLIC_PORT: u16 = 2200;
/// Where each host's sshd listens, behind the relay.
pub const SSHD_PORT: u16 = 2222;

const PREFIX: &str = "knetem";

pub struct Network {
    pid: u32,
    pub namespaces: Vec<String>,
    pub addresses: Vec<Ipv4Addr>,
    relays: Vec<Child>,
}

impl Network {
    /// Makes `hosts` namespaces on a fresh bridge; no relays yet.
    pub fn create(hosts: usize) -> Network {
        assert!(hosts <= 250, "one /24 holds at most 250 hosts");
        let pid = std::process::id();
        let mut network = Network {
            pid,
            namespaces: Vec::new(),
            addresses: Vec::new(),
            relays: Vec::new(),
        };
        let subnet = 100 + (pid % 150) as u8;
        let bridge = network.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("10.213.{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for index in 0..hosts {
            let namespace = format!("{PREFIX}-{pid}-{index}");
            let outside = format!("kn{pid}h{index}");
            let address = Ipv4Addr::new(10, 213, subnet, 2 + index as u8);
            ip(&["netns", "add", &namespace]);
            network.namespaces.push(namespace.clone());
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns",
                &namespace,
            ]);
            ip(&["link", "set", &outside, "master", &bridge, "up"]);
            let inside = |args: &[&str]| {
                let mut full = vec!["-n", namespace.as_str()];
                full.extend_from_slice(args);
                ip(&full);
            };
            inside(&["addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            inside(&["link", "set", "eth0", "up"]);
            inside(&["link", "set", "lo", "up"]);
            network.addresses.push(address);
        }
        network
    }

    fn bridge(&self) -> String {
        format!("{PREFIX}{}", self.pid)
    }

    /// (Re)starts every host's relay with `rtt` round-trip time (half of it
    /// each way) and waits until all of them listen.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.stop_relays();
        let me = std::env::current_exe().expect("bench binary path");
        for (namespace, address) in self.namespaces.iter().zip(&self.addresses) {
            let relay = Command::new("ip")
                .args(["netns", "exec", namespace])
                .arg(&me)
                .arg("relay")
                .arg(format!("{address}:{PUBLIC_PORT}"))
                .arg(format!("{address}:{SSHD_PORT}"))
                .arg((rtt / 2).as_micros().to_string())
                .stdin(Stdio::null())
                .spawn()
                .expect("starting a relay");
            self.relays.push(relay);
        }
        for address in &self.addresses {
            wait_listening(*address, PUBLIC_PORT);
        }
    }

    fn stop_relays(&mut self) {
        for mut relay in self.relays.drain(..) {
            let _ = relay.kill();
            let _ = relay.wait();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop_relays();
        for namespace in &self.namespaces {
            quiet_ip(&["netns", "del", namespace]);
        }
        quiet_ip(&["link", "del", &self.bridge()]);
    }
}

/// Deletes namespaces and bridges of earlier runs whose process is gone
/// (a SIGKILLed bench cannot clean up after itself).
pub fn sweep_stale() {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    for entry in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !alive(pid) {
            quiet_ip(&["netns", "del", &name]);
        }
    }
    for entry in fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(PREFIX) {
            if pid.chars().all(|c| c.is_ascii_digit()) && !alive(pid) {
                quiet_ip(&["link", "del", &name]);
            }
        }
    }
}

fn wait_listening(address: Ipv4Addr, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((address, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "relay on {address}:{port} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn quiet_ip(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
