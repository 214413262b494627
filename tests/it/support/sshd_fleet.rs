//! A fleet of real `sshd`s on loopback for the SSH tests. Each host is its own
//! sshd process (`/usr/sbin/sshd -D`) on a 127.0.0.x address and a free port,
//! serving its own Debian 12 root filesystem through `ChrootDirectory`: the
//! `scripts/debian-rootfs.sh` tarball is extracted once into a golden tree
//! under cargo's target tmp dir, and each host gets an overlayfs view of it
//! (a `cp -a --reflink=auto` copy where overlayfs is unavailable) with
//! `/proc` mounted and the machine's resolv.conf so apt works.
//! sshd authenticates root with a generated ed25519 key whose
//! `authorized_keys` lives outside the chroot; every host has its own host
//! key. The client side is a generated `ssh_config` (used with `ssh -F`) and
//! `known_hosts` in the fleet's directory, so the machine's `~/.ssh` is never
//! read or written. Dropping the fleet kills the sshds and their sessions,
//! unmounts, and removes the directory (left in place if anything is still
//! mounted, so a recursive delete can never reach through a mount).
//! [`Fleet::start_placed`] instead runs each sshd inside a network namespace
//! the caller made, reached at an address the caller chose (the netem
//! benchmark puts a delaying relay there), with extra overlay layers (say,
//! python3 for Ansible) over the golden tree.
//!
//! Everything here panics on failure: a test that cannot get its fleet must
//! fail, never skip.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kiln::remote::ssh::{HostSpec, SshOptions};

const SSHD: &str = "/usr/sbin/sshd";

/// A login user that is not root, for the `sudo -n` path. sshd looks users
/// up on this machine before it chroots, so the user exists here too (made
/// by `.ci/install-deps`, or on first use); each host's chroot gets its own
/// passwd entry from [`Fleet::unprivileged_user`].
pub const UNPRIVILEGED_USER: &str = "kiln-fleet";

/// Hands out 127.0.0.x addresses; starts from the pid so that test binaries
/// running side by side tend to use different ones.
static NEXT_ADDRESS: AtomicU32 = AtomicU32::new(0);

/// Where a host runs when it is not on loopback (the netem benchmark):
/// its sshd in network namespace `netns`, listening on `listen`, reached by
/// clients at `public` (for example a delaying relay in front of it; the
/// same as `listen` when nothing is in between).
pub struct Placement {
    pub netns: String,
    pub listen: (Ipv4Addr, u16),
    pub public: (Ipv4Addr, u16),
}

pub struct FleetHost {
    /// The `Host` alias the generated ssh_config knows this host by.
    pub alias: String,
    /// Where clients connect (and what known_hosts names).
    pub address: Ipv4Addr,
    pub port: u16,
    /// Where sshd itself listens: `address:port` unless placed behind something.
    listen: (Ipv4Addr, u16),
    /// The network namespace sshd runs in, if not this process's.
    netns: Option<String>,
    dir: PathBuf,
    root: PathBuf,
    log: PathBuf,
    host_public_key: String,
    sshd: Option<Child>,
    mounts: Vec<PathBuf>,
}

impl FleetHost {
    /// `root@127.0.0.x:port`.
    pub fn spec(&self) -> HostSpec {
        HostSpec {
            user: Some("root".into()),
            host: self.address.to_string(),
            port: Some(self.port),
        }
    }

    /// The host's root filesystem, as seen from this machine.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This host's line for a known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[{}]:{} {}\n",
            self.address,
            self.port,
            self.host_public_key.trim()
        )
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many logins sshd accepted, i.e. how many connections were opened.
    pub fn accepted_logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains("Accepted publickey"))
            .count()
    }
}

pub struct Fleet {
    dir: PathBuf,
    pub hosts: Vec<FleetHost>,
    client_config: PathBuf,
    known_hosts: PathBuf,
    user_key: PathBuf,
}

impl Fleet {
    /// Starts `count` hosts, each with a fresh copy of the Debian root
    /// filesystem, all trusted in the fleet's known_hosts.
    pub fn start(count: usize) -> Fleet {
        Fleet::start_with(count, None, &[])
    }

    /// Starts one host per placement, each sshd in its namespace, with
    /// `layers` (overlayfs lower directories, e.g. built by
    /// `benches/netem/python-layer.sh`) stacked above the golden tree in
    /// every host's root filesystem.
    pub fn start_placed(placements: Vec<Placement>, layers: &[PathBuf]) -> Fleet {
        let count = placements.len();
        Fleet::start_with(count, Some(placements), layers)
    }

    fn start_with(count: usize, placements: Option<Vec<Placement>>, layers: &[PathBuf]) -> Fleet {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run .ci/install-deps (openssh-server)"
        );
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd").expect("creating /run/sshd");
        let golden = golden_root();
        let dir = fleet_dir();
        let user_key = dir.join("id_ed25519");
        keygen(&user_key);
        fs::copy(user_key.with_extension("pub"), dir.join("authorized_keys"))
            .expect("writing authorized_keys");
        let mut fleet = Fleet {
            client_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            user_key,
            hosts: Vec::new(),
            dir,
        };
        let mut placements = placements.map(Vec::into_iter);
        for index in 0..count {
            let placement = placements.as_mut().and_then(Iterator::next);
            let host = fleet.prepare_host(index, &golden, layers, placement);
            fleet.hosts.push(host);
        }
        for index in 0..count {
            fleet.start_sshd(index);
        }
        fleet.write_client_config();
        let trusted: String = fleet
            .hosts
            .iter()
            .map(FleetHost::known_hosts_line)
            .collect();
        fleet.write_known_hosts(&trusted);
        fleet
    }

    pub fn host(&self, index: usize) -> &FleetHost {
        &self.hosts[index]
    }

    /// Options that use the fleet's ssh_config and known_hosts only.
    pub fn options(&self) -> SshOptions {
        SshOptions {
            connect_timeout: Duration::from_secs(5),
            ssh_config: Some(self.client_config.clone()),
            ..SshOptions::default()
        }
    }

    /// The file the fleet's ssh_config names as `UserKnownHostsFile`.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    pub fn write_known_hosts(&self, contents: &str) {
        fs::write(&self.known_hosts, contents).expect("writing known_hosts");
    }

    /// A scratch path inside the fleet's directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A fresh ed25519 public key, for a known_hosts entry that is wrong.
    pub fn unrelated_public_key(&self) -> String {
        let path = self.dir.join(format!(
            "unrelated-{}",
            NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed)
        ));
        keygen(&path);
        fs::read_to_string(path.with_extension("pub")).expect("reading generated key")
    }

    /// Kills host `index` as a crash would: its listening sshd and every
    /// session process under it, so open connections drop too.
    pub fn kill_host(&mut self, index: usize) {
        let host = &mut self.hosts[index];
        let Some(mut sshd) = host.sshd.take() else {
            return;
        };
        // Collected before the kill, while they are still sshd's descendants.
        let mut victims = descendants(sshd.id());
        victims.push(sshd.id());
        for pid in victims {
            // SAFETY: plain kill(2) on pids that are our own sshd's processes.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = sshd.wait();
    }

    /// Makes sure [`UNPRIVILEGED_USER`] exists on this machine (home `/`, so
    /// sshd needs no home inside the chroots; password `*`, since sshd
    /// without PAM refuses even key logins to `!`-locked accounts) and
    /// returns the passwd, group and shadow lines a chroot needs for it.
    pub fn unprivileged_user(&self) -> (String, String, String) {
        let exists = |user: &str| {
            Command::new("id")
                .arg(user)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !exists(UNPRIVILEGED_USER) {
            // May race another test doing the same; the check below decides.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--home-dir",
                    "/",
                    "--no-create-home",
                    "--shell",
                    "/bin/sh",
                    "--password",
                    "*",
                ])
                .arg(UNPRIVILEGED_USER)
                .status();
        }
        assert!(
            exists(UNPRIVILEGED_USER),
            "cannot create user {UNPRIVILEGED_USER}: run .ci/install-deps"
        );
        // sshd reads authorized_keys as the user, through every directory above it.
        for dir in self.dir.ancestors() {
            let mode = fs::metadata(dir).expect("stat fleet dir").mode();
            assert!(
                mode & 0o001 != 0,
                "{} is not searchable by {UNPRIVILEGED_USER}, so sshd cannot read its key",
                dir.display()
            );
        }
        let id = |flag: &str| {
            let output = Command::new("id")
                .arg(flag)
                .arg(UNPRIVILEGED_USER)
                .output()
                .expect("running id");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        (
            format!("{UNPRIVILEGED_USER}:x:{uid}:{gid}::/:/bin/sh\n"),
            format!("{UNPRIVILEGED_USER}:x:{gid}:\n"),
            format!("{UNPRIVILEGED_USER}:*:19000:0:99999:7:::\n"),
        )
    }

    /// Stops (SIGSTOP) host `index`'s sshd and sessions: connections stay
    /// open but nothing answers, as when a host hangs or the network drops
    /// packets. Dropping the fleet still kills them.
    pub fn freeze_host(&self, index: usize) {
        let Some(sshd) = &self.hosts[index].sshd else {
            return;
        };
        let mut victims = descendants(sshd.id());
        victims.push(sshd.id());
        for pid in victims {
            // SAFETY: plain kill(2) on pids that are our own sshd's processes.
            unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        }
    }

    /// Kills host `index`'s session processes but not its listener, as a
    /// firewall dropping an idle connection would.
    pub fn drop_connections(&self, index: usize) {
        let Some(sshd) = &self.hosts[index].sshd else {
            return;
        };
        for pid in descendants(sshd.id()) {
            // SAFETY: plain kill(2) on processes below our own sshd.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    fn prepare_host(
        &self,
        index: usize,
        golden: &Path,
        layers: &[PathBuf],
        placement: Option<Placement>,
    ) -> FleetHost {
        let dir = self.dir.join(format!("host{index}"));
        fs::create_dir(&dir).expect("creating host dir");
        let root = dir.join("root");
        let mut mounts = Vec::new();
        if mount_overlay(golden, layers, &dir) {
            mounts.push(root.clone());
        } else {
            assert!(layers.is_empty(), "layers need overlayfs");
            run(Command::new("cp")
                .arg("-a")
                .arg("--reflink=auto")
                .arg(golden)
                .arg(&root));
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod chroot");
        // The rootfs comes without one, so apt inside could not resolve the mirror.
        fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).expect("copying resolv.conf");
        // The chroot shares this machine's hostname; without it in /etc/hosts
        // sudo warns "unable to resolve host" on every command.
        fs::copy("/etc/hosts", root.join("etc/hosts")).expect("copying /etc/hosts");
        let proc_dir = root.join("proc");
        run(Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(&proc_dir));
        mounts.push(proc_dir);
        let key = dir.join("ssh_host_ed25519_key");
        keygen(&key);
        let host_public_key =
            fs::read_to_string(key.with_extension("pub")).expect("reading host key");
        let (netns, listen, (address, port)) = match placement {
            Some(p) => (Some(p.netns), p.listen, p.public),
            None => {
                let address = next_address();
                let endpoint = (address, free_port(address));
                (None, endpoint, endpoint)
            }
        };
        FleetHost {
            alias: format!("fleet-host-{index}"),
            address,
            port,
            listen,
            netns,
            log: dir.join("sshd.log"),
            dir,
            root,
            host_public_key,
            sshd: None,
            mounts,
        }
    }

    fn start_sshd(&mut self, index: usize) {
        let authorized_keys = self.dir.join("authorized_keys");
        let host = &mut self.hosts[index];
        let config = host.dir.join("sshd_config");
        fs::write(&config, sshd_config(host, &authorized_keys)).expect("writing sshd_config");
        // `ip netns exec` execs sshd in place, so the child's pid is sshd's.
        let mut command = match &host.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, SSHD]);
                command
            }
            None => Command::new(SSHD),
        };
        let child = command
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&host.log)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting sshd");
        host.sshd = Some(child);
        wait_for_listener(host);
    }

    fn write_client_config(&self) {
        let mut config = String::new();
        for host in &self.hosts {
            config.push_str(&format!(
                "Host {}\n  HostName {}\n  Port {}\n",
                host.alias, host.address, host.port
            ));
        }
        config.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  CheckHostIP no\n",
            self.user_key.display(),
            self.known_hosts.display()
        ));
        fs::write(&self.client_config, config).expect("writing ssh_config");
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for index in 0..self.hosts.len() {
            self.kill_host(index);
        }
        for host in &self.hosts {
            for mount in host.mounts.iter().rev() {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(mount)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "sshd_fleet: {} still has mounts; leaving it in place",
                self.dir.display()
            );
        }
    }
}

fn sshd_config(host: &FleetHost, authorized_keys: &Path) -> String {
    format!(
        "ListenAddress {address}:{port}\n\
         HostKey {dir}/ssh_host_ed25519_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {authorized_keys}\n\
         ChrootDirectory {root}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PrintMotd no\n\
         LogLevel INFO\n\
         MaxSessions 50\n\
         MaxStartups 50\n",
        address = host.listen.0,
        port = host.listen.1,
        dir = host.dir.display(),
        authorized_keys = authorized_keys.display(),
        root = host.root.display(),
    )
}

/// The extracted Debian tree every host copies, built once per tarball.
pub fn golden_root() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let output = Command::new("bash")
        .arg(repo.join("scripts/debian-rootfs.sh"))
        .output()
        .expect("running debian-rootfs.sh");
    assert!(
        output.status.success(),
        "debian-rootfs.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tarball = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let stem = tarball
        .file_stem()
        .expect("tarball name")
        .to_string_lossy()
        .into_owned();
    let golden = chroot_safe_base().join(format!("golden-{stem}"));
    if golden.join("etc/os-release").exists() {
        return golden;
    }
    let staging = tempfile::Builder::new()
        .prefix(".golden-")
        .tempdir_in(chroot_safe_base())
        .expect("staging dir")
        .keep();
    run(Command::new("tar")
        .arg("-C")
        .arg(&staging)
        .arg("-xf")
        .arg(&tarball));
    // Another test may have won the race; its tree is as good as ours.
    if fs::rename(&staging, &golden).is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    golden
}

/// Gives `dir/root` a copy-on-write view of `golden` (instant, and only
/// what the host changes is written); false where overlayfs is unavailable.
fn mount_overlay(golden: &Path, layers: &[PathBuf], dir: &Path) -> bool {
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
    for path in [&upper, &work, &root] {
        fs::create_dir(path).expect("creating overlay dirs");
    }
    // The first lower directory is the top one.
    let lower: Vec<String> = layers
        .iter()
        .chain([&golden.to_path_buf()])
        .map(|layer| layer.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&root)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        fs::remove_dir(&root).expect("removing unused overlay mount point");
    }
    mounted
}

/// sshd only chroots into a path whose every component is root-owned and
/// not writable by group or others, which rules out /tmp. Cargo's target
/// tmp dir normally qualifies; this checks rather than assumes.
pub fn chroot_safe_base() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sshd-fleet");
    fs::create_dir_all(&base).expect("creating fleet base dir");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod fleet base dir");
    for component in base.ancestors() {
        let meta = fs::metadata(component).expect("stat fleet base");
        assert!(
            meta.uid() == 0 && meta.mode() & 0o022 == 0,
            "sshd cannot chroot below {}: it must be root-owned and not group/world-writable",
            component.display()
        );
    }
    base
}

fn fleet_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("fleet-")
        .tempdir_in(chroot_safe_base())
        .expect("fleet dir")
        .keep();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod fleet dir");
    dir
}

fn next_address() -> Ipv4Addr {
    let n = std::process::id()
        .wrapping_mul(7)
        .wrapping_add(NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed));
    Ipv4Addr::new(127, 0, 0, 2 + (n % 250) as u8)
}

/// A port the kernel just had free on `address`.
fn free_port(address: Ipv4Addr) -> u16 {
    TcpListener::bind((address, 0))
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}

fn wait_for_listener(host: &mut FleetHost) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(host.listen).is_err() {
        let exited = host
            .sshd
            .as_mut()
            .map(|c| c.try_wait().ok().flatten().is_some())
            .unwrap_or(true);
        assert!(
            !exited,
            "sshd for {}:{} exited:\n{}",
            host.listen.0,
            host.listen.1,
            host.log()
        );
        assert!(
            Instant::now() < deadline,
            "sshd on {}:{} never listened:\n{}",
            host.listen.0,
            host.listen.1,
            host.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-fleet", "-f"])
        .arg(path));
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every process below `pid`, from /proc's parent links.
fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may hold spaces and parens; fields resume after the last ')'.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if let Some(parent) = after_name
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
        {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        for &child in children.get(&next).into_iter().flatten() {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// Mount points at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4).map(str::to_string))
        .filter(|mount| mount.starts_with(&prefix))
        .collect()
}
