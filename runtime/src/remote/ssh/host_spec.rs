//! Host specs: how a host is written on the command line or in an
//! inventory (`[USER@]HOST[:PORT]`, IPv6 as `[ADDR]:PORT` or bare), the
//! checks that keep a name from reaching ssh as an option or config syntax,
//! and [`ResolvedHost`], what `ssh -G` says a spec resolves to. It is apart
//! from the SSH remote so that the inventory readers can use the value type
//! without the connection, process and remote-script code around it.

use std::fmt;
use std::str::FromStr;

use super::SshError;

/// A host as written on the command line or in an inventory:
/// `[USER@]HOST[:PORT]`, with IPv6 addresses as `[ADDR]:PORT` or bare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// Login user; `None` leaves it to ssh_config (`User`) or the local user.
    pub user: Option<String>,
    /// Host name, ssh_config alias or address.
    pub host: String,
    /// Port; `None` leaves it to ssh_config (`Port`) or 22.
    pub port: Option<u16>,
}

impl HostSpec {
    /// A spec with only a host name, e.g. an ssh_config alias.
    pub fn new(host: impl Into<String>) -> Self {
        HostSpec {
            user: None,
            host: host.into(),
            port: None,
        }
    }
}

impl FromStr for HostSpec {
    type Err = SshError;

    fn from_str(text: &str) -> Result<Self, SshError> {
        let invalid = |reason: &str| SshError::InvalidHostSpec {
            spec: text.to_string(),
            reason: reason.to_string(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        let (user, rest) = match text.split_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, text),
        };
        let (host, port) = split_host_port(rest).map_err(|reason| invalid(&reason))?;
        if let Some(user) = user {
            check_user(user).map_err(|reason| invalid(&reason))?;
        }
        check_host(host).map_err(|reason| invalid(&reason))?;
        Ok(HostSpec {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match self.port {
            Some(port) if self.host.contains(':') => write!(f, "[{}]:{port}", self.host),
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Splits `HOST[:PORT]`, `[V6ADDR][:PORT]` or a bare IPv6 address (two or
/// more colons, so no port can be told apart).
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, tail) = bracketed
            .split_once(']')
            .ok_or("`[` without a closing `]`")?;
        let port = match tail {
            "" => None,
            _ => Some(parse_port(
                tail.strip_prefix(':').ok_or("expected `:PORT` after `]`")?,
            )?),
        };
        return Ok((host, port));
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host, Some(parse_port(port)?))),
        _ => Ok((text, None)),
    }
}

/// Parses a TCP port, 1 to 65535.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("`{text}` is not a port (1 to 65535)")),
    }
}

pub(crate) fn check_user(user: &str) -> Result<(), String> {
    let bad = user.is_empty()
        || user.starts_with('-')
        || user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@:/[]".contains(c));
    if bad {
        return Err(format!("`{user}` is not a user name"));
    }
    Ok(())
}

/// Host names reach ssh as a single argument after `--`, but a name that
/// looks like an option or holds shell or config syntax is a mistake anyway.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    if host.starts_with('-') {
        return Err(format!("host name `{host}` starts with `-`"));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_:%".contains(*c)))
    {
        return Err(format!(
            "host name `{host}` contains `{}`",
            c.escape_default()
        ));
    }
    Ok(())
}

/// What `ssh -G` says the host resolves to, for messages about host keys.
#[derive(Debug, Clone)]
pub(super) struct ResolvedHost {
    pub(super) hostname: String,
    pub(super) port: u16,
    pub(super) known_hosts: String,
}

impl ResolvedHost {
    /// The name `known_hosts` files this host under.
    pub(super) fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.hostname.clone()
        } else {
            format!("[{}]:{}", self.hostname, self.port)
        }
    }

    pub(super) fn keyscan_command(&self) -> String {
        format!("ssh-keyscan -p {} {}", self.port, self.hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> HostSpec {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn host_specs_parse_user_host_and_port() {
        assert_eq!(spec("web1"), HostSpec::new("web1"));
        assert_eq!(
            spec("root@10.0.0.5:2222"),
            HostSpec {
                user: Some("root".into()),
                host: "10.0.0.5".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            spec("[::1]:2200"),
            HostSpec {
                user: None,
                host: "::1".into(),
                port: Some(2200)
            }
        );
        assert_eq!(
            spec("admin@[fe80::1%eth0]"),
            HostSpec {
                user: Some("admin".into()),
                host: "fe80::1%eth0".into(),
                port: None
            }
        );
        assert_eq!(spec("fe80::1"), HostSpec::new("fe80::1"));
    }

    #[test]
    fn host_specs_print_back_the_same() {
        for text in ["web1", "root@10.0.0.5:2222", "[::1]:2200", "u@fe80::1"] {
            assert_eq!(spec(text).to_string(), text);
        }
    }

    #[test]
    fn bad_host_specs_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("-oProxyCommand=x", "starts with `-`"),
            ("web1:0", "not a port"),
            ("web1:http", "not a port"),
            ("[::1", "closing"),
            ("[::1]22", "`:PORT`"),
            ("@web1", "user name"),
            ("a b", "contains"),
            ("x;reboot", "contains"),
        ] {
            let error = text.parse::<HostSpec>().expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
