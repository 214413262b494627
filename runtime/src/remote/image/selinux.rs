//! `--selinux-relabel`: how a packed SELinux guest gets its file labels back,
//! the way virt-customize does it. A guest counts as an SELinux guest when it
//! has both `/usr/sbin/load_policy` and `/etc/selinux/config`; its policy is
//! `SELINUXTYPE` from that file (`targeted` when unset, as libselinux
//! assumes); the whole file system is relabelled with libguestfs's
//! `selinux_relabel` (setfiles in the appliance, forced) against
//! `/etc/selinux/POLICY/contexts/files/file_contexts`. When that cannot be
//! done (no spec file, an appliance without setfiles), `/.autorelabel` is
//! created instead so the guest relabels itself on its first boot. This
//! module owns those decisions; the parent module runs the libguestfs calls.

use std::fmt;

/// The file whose presence (with [`CONFIG`]) marks an SELinux guest.
pub(super) const LOAD_POLICY: &str = "/usr/sbin/load_policy";
/// The guest's SELinux configuration.
pub(super) const CONFIG: &str = "/etc/selinux/config";
/// The marker that makes an SELinux guest relabel everything at boot.
pub(super) const AUTORELABEL: &str = "/.autorelabel";

/// What to do for a guest, decided from what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Not an SELinux guest: nothing to do.
    NoPolicy,
    /// Relabel `/` against `spec_file`.
    Relabel { policy: String, spec_file: String },
}

impl Plan {
    /// The plan for a guest with or without `load_policy`, and with the
    /// contents of its `/etc/selinux/config` if it has one.
    pub fn for_guest(has_load_policy: bool, config: Option<&str>) -> Plan {
        match config {
            Some(config) if has_load_policy => {
                let policy = policy_type(config);
                let spec_file = format!("/etc/selinux/{policy}/contexts/files/file_contexts");
                Plan::Relabel { policy, spec_file }
            }
            _ => Plan::NoPolicy,
        }
    }
}

/// `SELINUXTYPE` from an `/etc/selinux/config`: the last assignment wins
/// (libselinux reads every line), the key is matched without regard to
/// case (as libselinux does), quotes around the value are dropped (as
/// Augeas's shellvars lens, which virt-customize reads it with, does), and
/// the default is `targeted`.
pub(super) fn policy_type(config: &str) -> String {
    let mut policy = None;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("SELINUXTYPE") {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        // A policy name is a directory name under /etc/selinux: nothing
        // that could lead elsewhere.
        if !value.is_empty() && !value.contains('/') && value != "." && value != ".." {
            policy = Some(value.to_string());
        }
    }
    policy.unwrap_or_else(|| "targeted".to_string())
}

/// What `--selinux-relabel` did, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelabelOutcome {
    /// The guest has no SELinux policy; nothing was done.
    NoPolicy,
    /// Every file was relabelled with this policy's contexts.
    Relabelled { policy: String },
    /// The relabel could not run here; the guest relabels at first boot.
    AtFirstBoot { policy: String, reason: String },
}

impl fmt::Display for RelabelOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelabelOutcome::NoPolicy => write!(
                f,
                "SELinux relabel: the guest has no SELinux policy ({LOAD_POLICY} and {CONFIG}); nothing to relabel"
            ),
            RelabelOutcome::Relabelled { policy } => {
                write!(f, "SELinux relabel: relabelled every file with the `{policy}` policy")
            }
            RelabelOutcome::AtFirstBoot { policy, reason } => write!(
                f,
                "SELinux relabel: could not relabel with the `{policy}` policy here ({reason}); created {AUTORELABEL} so the guest relabels at its first boot"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_needs_load_policy_and_a_config_to_be_relabelled() {
        assert_eq!(Plan::for_guest(false, None), Plan::NoPolicy);
        assert_eq!(
            Plan::for_guest(false, Some("SELINUXTYPE=targeted\n")),
            Plan::NoPolicy
        );
        assert_eq!(Plan::for_guest(true, None), Plan::NoPolicy);
        assert_eq!(
            Plan::for_guest(true, Some("SELINUX=enforcing\nSELINUXTYPE=mls\n")),
            Plan::Relabel {
                policy: "mls".into(),
                spec_file: "/etc/selinux/mls/contexts/files/file_contexts".into()
            }
        );
    }

    #[test]
    fn the_policy_defaults_to_targeted() {
        assert_eq!(policy_type(""), "targeted");
        assert_eq!(policy_type("SELINUX=enforcing\n"), "targeted");
        assert_eq!(
            policy_type("# SELINUXTYPE=mls\nSELINUX=permissive\n"),
            "targeted"
        );
        assert_eq!(policy_type("SELINUXTYPE=\n"), "targeted");
    }

    #[test]
    fn the_policy_is_read_as_libselinux_and_augeas_read_it() {
        let centos = "# This file controls the state of SELinux on the system.\n\
                      SELINUX=enforcing\n\
                      # SELINUXTYPE= can take one of three values:\n\
                      SELINUXTYPE=targeted\n";
        assert_eq!(policy_type(centos), "targeted");
        assert_eq!(policy_type("  SELINUXTYPE = minimum  \n"), "minimum");
        assert_eq!(policy_type("selinuxtype=mls\n"), "mls");
        assert_eq!(policy_type("SELINUXTYPE=\"mls\"\n"), "mls");
        assert_eq!(policy_type("SELINUXTYPE='minimum'\n"), "minimum");
        assert_eq!(policy_type("SELINUXTYPE=minimum\nSELINUXTYPE=mls\n"), "mls");
    }

    #[test]
    fn a_policy_name_cannot_lead_out_of_etc_selinux() {
        assert_eq!(policy_type("SELINUXTYPE=../../tmp/x\n"), "targeted");
        assert_eq!(policy_type("SELINUXTYPE=..\n"), "targeted");
    }
}
