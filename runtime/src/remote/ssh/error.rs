//! [`SshError`]: why a host could not be connected to or used, each case
//! worded so the user can act on it (the host named, the command to type
//! for a host key, the detail ssh or sudo gave).

use super::ACCEPT_NEW_HOST_KEYS_FLAG;

/// Why a host could not be connected to or used.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("invalid host `{spec}`: {reason}")]
    InvalidHostSpec { spec: String, reason: String },
    #[error(
        "{host}: its host key is not in {known_hosts}; after checking the key, add it with \
         `{keyscan} >> {known_hosts}` or run kiln with {flag}",
        flag = ACCEPT_NEW_HOST_KEYS_FLAG
    )]
    UnknownHostKey {
        host: String,
        known_hosts: String,
        keyscan: String,
    },
    #[error(
        "{host}: its host key DIFFERS from the one in {known_hosts} (reinstalled host or \
         man-in-the-middle); if the change is expected, remove the old key with \
         `ssh-keygen -f {known_hosts} -R {known_hosts_name}` and accept the new one"
    )]
    HostKeyChanged {
        host: String,
        known_hosts: String,
        known_hosts_name: String,
    },
    #[error("{host}: authentication failed: {detail}")]
    AuthenticationFailed { host: String, detail: String },
    #[error("{host} is unreachable: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("{host}: no connection within {seconds:.0} s")]
    ConnectTimeout { host: String, seconds: f64 },
    #[error("{host}: ssh cannot use the configuration: {detail}")]
    Config { host: String, detail: String },
    #[error(
        "{host}: logged in as `{user}`, which is not root, and `sudo -n` does not work: {detail}"
    )]
    SudoUnavailable {
        host: String,
        user: String,
        detail: String,
    },
    #[error("{host}: cannot read the distro from /etc/os-release: {detail}")]
    Probe { host: String, detail: String },
    #[error("cannot run `ssh`: {source} (is openssh-client installed?)")]
    SpawnSsh { source: std::io::Error },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}
