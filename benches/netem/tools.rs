//! The three tools the netem benchmark times against one fleet — kiln
//! `validate` (one or more builds, side by side), `ansible-playbook
//! --check` and pytest-testinfra — and how a run is timed: wall time, and
//! the client CPU of the tool and everything it started (ssh clients, and
//! ControlPersist masters that outlive it), read from a cgroup-v1 `cpuacct`
//! group the tool is started in. After each run every process left in that
//! group (an Ansible or testinfra ControlPersist master) is killed, so no run
//! inherits a warm connection from the one before.

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One timed run.
#[derive(Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub cpu: Duration,
}

/// What a run targets: hosts by ssh_config alias and by address.
pub struct Hosts<'a> {
    pub ssh_config: &'a Path,
    pub addresses: Vec<String>,
    pub port: u16,
}

pub enum Tool {
    Kiln { label: String, binary: PathBuf },
    Ansible { venv: PathBuf },
    Testinfra { venv: PathBuf },
}

impl Tool {
    pub fn label(&self) -> String {
        match self {
            Tool::Kiln { label, .. } => format!("kiln {label}"),
            Tool::Ansible { .. } => "ansible".into(),
            Tool::Testinfra { .. } => "testinfra".into(),
        }
    }

    /// Runs the ten checks against `hosts` once; panics if the tool fails,
    /// since a failed run's time means nothing.
    pub fn run(&self, hosts: &Hosts, scratch: &Path) -> Sample {
        let run_dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(scratch)
            .expect("run scratch dir");
        let mut command = self.command(hosts, run_dir.path());
        timed(&mut command, &self.label())
    }

    fn command(&self, hosts: &Hosts, run_dir: &Path) -> Command {
        let parallel = hosts.addresses.len().min(64).to_string();
        match self {
            Tool::Kiln { binary, .. } => {
                let mut command = Command::new(binary);
                command
                    .arg("validate")
                    .arg("-F")
                    .arg(hosts.ssh_config)
                    .args(["--forks", &parallel, "--manifest"])
                    .arg(repo().join("tests/fixtures/fleet/bench/image.yaml"));
                for address in &hosts.addresses {
                    command
                        .arg("--host")
                        .arg(format!("root@{address}:{}", hosts.port));
                }
                command
            }
            Tool::Ansible { venv } => {
                let inventory = run_dir.join("inventory.ini");
                let lines: String = hosts
                    .addresses
                    .iter()
                    .map(|a| format!("{a} ansible_port={}\n", hosts.port))
                    .collect();
                fs::write(&inventory, format!("[all]\n{lines}")).expect("writing inventory");
                let mut command = Command::new(venv.join("bin/ansible-playbook"));
                command
                    .arg("--check")
                    .arg("-i")
                    .arg(&inventory)
                    .args(["--forks", &parallel])
                    .arg(repo().join("benches/netem/playbook.yml"))
                    .env("ANSIBLE_PIPELINING", "True")
                    .env("ANSIBLE_HOST_KEY_CHECKING", "True")
                    .env("ANSIBLE_REMOTE_USER", "root")
                    // Added to Ansible's own ssh_args (ControlMaster=auto,
                    // ControlPersist=60s), which stay as they are.
                    .env(
                        "ANSIBLE_SSH_COMMON_ARGS",
                        format!("-F {}", hosts.ssh_config.display()),
                    )
                    // A fresh control socket dir: no warm master from a previous run.
                    .env("ANSIBLE_SSH_CONTROL_PATH_DIR", run_dir.join("cp"))
                    .env("ANSIBLE_LOCAL_TEMP", run_dir.join("tmp"))
                    .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
                    .env("ANSIBLE_NOCOLOR", "1");
                command
            }
            Tool::Testinfra { venv } => {
                let urls: Vec<String> = hosts
                    .addresses
                    .iter()
                    .map(|a| format!("ssh://root@{a}:{}", hosts.port))
                    .collect();
                let mut command = Command::new(venv.join("bin/pytest"));
                command
                    .args(["-q", "-p", "no:cacheprovider", "-n", &parallel])
                    .arg(format!("--hosts={}", urls.join(",")))
                    .arg(format!("--ssh-config={}", hosts.ssh_config.display()))
                    // testinfra asks for ControlMaster=auto and ControlPersist
                    // but sets no ControlPath (and takes none from the host
                    // URL), so without this every command is a new login.
                    .arg(format!(
                        "--ssh-extra-args=-o ControlPath={}",
                        run_dir.join("cm-%C").display()
                    ))
                    .arg(repo().join("benches/netem/test_fleet.py"))
                    .current_dir(run_dir);
                command
            }
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A cgroup-v1 cpuacct group for one run, removed (after killing what is
/// left in it) when dropped.
struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    fn create() -> CpuGroup {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/cpuacct/knetem-{}",
            std::process::id()
        ));
        if !dir.exists() {
            fs::create_dir(&dir).expect("creating a cpuacct cgroup");
        }
        fs::write(dir.join("cpuacct.usage"), "0").expect("resetting cpuacct.usage");
        CpuGroup { dir }
    }

    fn usage(&self) -> Duration {
        let text = fs::read_to_string(self.dir.join("cpuacct.usage")).expect("cpuacct.usage");
        Duration::from_nanos(text.trim().parse().expect("cpuacct.usage is a number"))
    }

    /// Kills the processes still in the group: they are this run's own
    /// leftovers (ControlPersist masters), nothing else can be in it.
    fn kill_leftovers(&self) {
        for _ in 0..50 {
            let procs = fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) on processes this run started (they are in its cgroup).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        self.kill_leftovers();
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Runs `command` inside a fresh cpuacct group; wall time until it exits,
/// CPU of everything it started (including what outlives it, read when the
/// tool has exited).
fn timed(command: &mut Command, what: &str) -> Sample {
    let group = CpuGroup::create();
    let procs = CString::new(
        group
            .dir
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("cgroup path");
    // SAFETY: between fork and exec only open/write/close on a prepared path.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process, i.e. this child, into the group.
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let wall = started.elapsed();
    let cpu = group.usage();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Sample { wall, cpu }
}
