//! Distro names and families, in one place: which family each distro name
//! belongs to (what `os_case` keys and the `package` validator match), and
//! how an `/etc/os-release` file is read. The image target's inspection,
//! the SSH target's probe and the component host's `family-of` import all
//! ask this module, so a name means the same thing on every target.
//!
//! Names come from two sources, and the table holds both spellings:
//! libguestfs's inspection (`inspect_get_distro`: `rhel`, `oraclelinux`,
//! `archlinux`, `kalilinux`, `redhat-based`, …) for images, and os-release
//! `ID` (`rhel`, `ol`, `arch`, `kali`, `opensuse-leap`, …) for hosts.
//! Sahara's own table (`_DISTRO_FAMILES` in `sahara/plugins/images.py`:
//! centos, centos7, fedora, redhat, rhel, redhatenterpriseserver → redhat;
//! ubuntu → debian) is kept whole.

/// A family: distros that share a package manager, named by the key an
/// `os_case` entry uses for all of them.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    /// Every distro name of the family, lowercase: os-release IDs and
    /// libguestfs's names. The family's own name is among them.
    pub members: &'static [&'static str],
}

/// Every family kiln knows, in the order messages list them.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "redhat",
        members: &[
            // Sahara's.
            "redhat",
            "rhel",
            "redhatenterpriseserver",
            "centos",
            "centos7",
            "fedora",
            // libguestfs's names (`redhat-based`: a guest with an
            // /etc/redhat-release libguestfs does not recognise, e.g.
            // AlmaLinux on libguestfs before it knew AlmaLinux).
            "redhat-based",
            "oraclelinux",
            "scientificlinux",
            // os-release IDs and other spellings in the wild.
            "redhatenterprise",
            "centos8",
            "centos-stream",
            "rocky",
            "almalinux",
            "ol",
            "scientific",
            "amzn",
            "amazon",
            "cloudlinux",
            "eurolinux",
            "circle",
            "openeuler",
        ],
    },
    Family {
        name: "debian",
        members: &[
            "debian",
            "ubuntu",
            "linuxmint",
            "raspbian",
            "devuan",
            "kali",
            "kalilinux",
            "pop",
            "elementary",
            "neon",
            "zorin",
            "pureos",
            "deepin",
        ],
    },
    Family {
        name: "suse",
        members: &[
            "suse",
            "suse-based",
            "sles",
            "sled",
            "sles_sap",
            "sle_hpc",
            "sle-micro",
            "opensuse",
            "opensuse-leap",
            "opensuse-tumbleweed",
            "opensuse-microos",
        ],
    },
    Family {
        name: "alpine",
        members: &["alpine", "alpinelinux"],
    },
    Family {
        name: "arch",
        members: &[
            "arch",
            "archlinux",
            "archarm",
            "manjaro",
            "endeavouros",
            "artix",
        ],
    },
    Family {
        name: "mageia",
        members: &["mageia", "mandriva"],
    },
    Family {
        name: "void",
        members: &["void", "voidlinux"],
    },
    Family {
        name: "gentoo",
        members: &["gentoo"],
    },
    // ALT Linux installs rpm packages with apt-get: neither the redhat
    // nor the debian family's commands fit it.
    Family {
        name: "altlinux",
        members: &["altlinux"],
    },
];

/// The family of a distro name (any case, surrounding blanks ignored);
/// `None` for names kiln knows no family for.
pub fn family_of(distro: &str) -> Option<&'static str> {
    let name = distro.trim().to_ascii_lowercase();
    FAMILIES
        .iter()
        .find(|family| family.members.contains(&name.as_str()))
        .map(|family| family.name)
}

/// The family names, in table order, for messages.
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|family| family.name).collect()
}

/// An `os-release(5)` file: `KEY=value` lines, values optionally in
/// double or single quotes, `#` comment lines and blank lines skipped.
#[derive(Debug, Default, PartialEq)]
pub struct OsRelease {
    entries: Vec<(String, String)>,
}

impl OsRelease {
    /// Reads the text of an os-release file. Lines that are not
    /// `NAME=value` assignments are skipped rather than refused: a host's
    /// odd line should not keep kiln from reading its `ID`.
    pub fn parse(text: &str) -> OsRelease {
        let entries = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let (key, value) = line.split_once('=')?;
                let key = key.trim();
                let is_name =
                    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                is_name.then(|| (key.to_string(), unquote(value.trim())))
            })
            .collect();
        OsRelease { entries }
    }

    /// The value of `key`; the last assignment wins, as when the file is
    /// sourced by a shell.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// `ID`, lowercased; `None` when missing or empty.
    pub fn id(&self) -> Option<String> {
        self.get("ID")
            .filter(|id| !id.is_empty())
            .map(str::to_ascii_lowercase)
    }

    /// `ID_LIKE`'s space-separated names, lowercased, closest first.
    pub fn id_like(&self) -> Vec<String> {
        self.get("ID_LIKE")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// The distro name a host reports (the `distro` argument and what
    /// `os_case` matches): `ID` when kiln knows its family, otherwise the
    /// first `ID_LIKE` entry whose family it knows ("myos" like "rhel
    /// fedora" → "rhel"), otherwise `ID` as it is. `None` without an `ID`.
    ///
    /// RHEL stays `rhel` (Sahara's SSH remote said `redhat`, from
    /// `platform.linux_distribution`): libguestfs says `rhel` for the same
    /// system as an image, so a script sees one name on both targets, and
    /// `os_case`'s `redhat:` key matches either through the family.
    pub fn distro(&self) -> Option<String> {
        let id = self.id()?;
        if family_of(&id).is_some() {
            return Some(id);
        }
        let known_like = self
            .id_like()
            .into_iter()
            .find(|candidate| family_of(candidate).is_some());
        Some(known_like.unwrap_or(id))
    }
}

/// An os-release value without its quoting: `"…"` with backslash escapes
/// undone, `'…'` literally, and an unquoted value up to the first blank.
fn unquote(value: &str) -> String {
    if let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                other => out.push(other),
            }
        }
        return out;
    }
    if let Some(inner) = value
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return inner.to_string();
    }
    value
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sahara_mapping_is_kept() {
        for name in [
            "centos",
            "centos7",
            "fedora",
            "redhat",
            "rhel",
            "redhatenterpriseserver",
        ] {
            assert_eq!(family_of(name), Some("redhat"), "{name}");
        }
        assert_eq!(family_of("ubuntu"), Some("debian"));
    }

    #[test]
    fn libguestfs_names_have_their_families() {
        for (name, family) in [
            ("redhat-based", "redhat"),
            ("oraclelinux", "redhat"),
            ("scientificlinux", "redhat"),
            ("rocky", "redhat"),
            ("debian", "debian"),
            ("linuxmint", "debian"),
            ("kalilinux", "debian"),
            ("suse-based", "suse"),
            ("sles", "suse"),
            ("opensuse", "suse"),
            ("alpinelinux", "alpine"),
            ("archlinux", "arch"),
            ("mageia", "mageia"),
            ("mandriva", "mageia"),
            ("voidlinux", "void"),
            ("gentoo", "gentoo"),
            ("altlinux", "altlinux"),
        ] {
            assert_eq!(family_of(name), Some(family), "{name}");
        }
    }

    #[test]
    fn os_release_ids_have_their_families() {
        for (id, family) in [
            ("almalinux", "redhat"),
            ("ol", "redhat"),
            ("amzn", "redhat"),
            ("centos-stream", "redhat"),
            ("kali", "debian"),
            ("pop", "debian"),
            ("opensuse-leap", "suse"),
            ("opensuse-tumbleweed", "suse"),
            ("sled", "suse"),
            ("alpine", "alpine"),
            ("arch", "arch"),
            ("manjaro", "arch"),
            ("void", "void"),
        ] {
            assert_eq!(family_of(id), Some(family), "{id}");
        }
    }

    #[test]
    fn names_are_matched_without_case_or_blanks() {
        assert_eq!(family_of(" CentOS\n"), Some("redhat"));
        assert_eq!(family_of("plan9"), None);
        assert_eq!(family_of(""), None);
    }

    #[test]
    fn every_name_has_one_family_and_each_family_holds_its_own_name() {
        let mut seen = std::collections::HashMap::new();
        for family in FAMILIES {
            assert!(family.members.contains(&family.name), "{}", family.name);
            for member in family.members {
                assert_eq!(member.to_ascii_lowercase(), *member);
                if let Some(other) = seen.insert(*member, family.name) {
                    panic!("{member} is in both {other} and {}", family.name);
                }
            }
        }
    }

    #[test]
    fn os_release_values_lose_their_quotes() {
        let text = "\
# a comment, and an indented one below
  # ID=commented
NAME=\"Rocky Linux\"
ID=\"rocky\"
ID_LIKE='rhel centos fedora'
VERSION_ID=9.3
PRETTY_NAME=\"Say \\\"hi\\\" \\\\ \\$HOME\"

not an assignment
";
        let os_release = OsRelease::parse(text);
        assert_eq!(os_release.get("NAME"), Some("Rocky Linux"));
        assert_eq!(os_release.id().as_deref(), Some("rocky"));
        assert_eq!(os_release.id_like(), ["rhel", "centos", "fedora"]);
        assert_eq!(os_release.get("VERSION_ID"), Some("9.3"));
        assert_eq!(os_release.get("PRETTY_NAME"), Some("Say \"hi\" \\ $HOME"));
        assert_eq!(os_release.get("ID_LIKE "), None);
    }

    #[test]
    fn the_last_assignment_wins_and_ids_are_lowercased() {
        let os_release = OsRelease::parse("ID=debian\nID=Ubuntu\n");
        assert_eq!(os_release.id().as_deref(), Some("ubuntu"));
        assert_eq!(OsRelease::parse("ID=\n").id(), None);
        assert_eq!(OsRelease::parse("ID=\"\"\n").id(), None);
    }

    #[test]
    fn the_distro_is_the_id_or_a_known_id_like() {
        let distro = |text: &str| OsRelease::parse(text).distro();
        assert_eq!(
            distro("NAME=\"Debian\"\nID=debian\n").as_deref(),
            Some("debian")
        );
        assert_eq!(
            distro("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"").as_deref(),
            Some("rocky")
        );
        // RHEL keeps its os-release ID (see `OsRelease::distro`).
        assert_eq!(
            distro("ID=\"rhel\"\nID_LIKE=\"fedora\"").as_deref(),
            Some("rhel")
        );
        assert_eq!(
            distro("ID=myos\nID_LIKE=\"frob rhel fedora\"").as_deref(),
            Some("rhel")
        );
        assert_eq!(
            distro("ID=myos\nID_LIKE=\"frob suse opensuse\"").as_deref(),
            Some("suse")
        );
        assert_eq!(distro("ID=myos\nID_LIKE=frob\n").as_deref(), Some("myos"));
        assert_eq!(distro("ID=myos\n").as_deref(), Some("myos"));
        assert_eq!(distro("NAME=x\n"), None);
    }

    #[test]
    fn family_names_follow_the_table() {
        assert_eq!(
            family_names(),
            [
                "redhat", "debian", "suse", "alpine", "arch", "mageia", "void", "gentoo",
                "altlinux"
            ]
        );
    }
}
