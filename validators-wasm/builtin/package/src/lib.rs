//! The `package` validator type: checks that packages are installed and, when
//! reconciling, installs them with the distro's package manager.
//!
//! Spec: a name (`java`), a map with a version (`{java: {version: "8"}}`), or
//! a list mixing both. A versioned package is rendered `name-version`, as
//! Sahara did, for every package manager (the rpm-based ones read it as a
//! version; the others take it as a package name).
//!
//! The package manager follows the distro's family (the host's
//! `family-of`), as virt-customize's `--install` follows libguestfs's
//! inspection: apt, dnf or yum, zypper, apk, pacman, urpmi, xbps, and
//! ALT Linux's apt-get over rpm. Portage is left out: it builds from source.

use kiln_validator_sdk::{
    expect_str, export_validator, host, kind_of, leaf_plan, pointer_index, pointer_key,
    run_checked, spec_error, Guest, Plan, SpecError, Value,
};

struct Package;

impl Guest for Package {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let packages = packages(&kiln_validator_sdk::parse_spec(&spec)?)?;
        Ok(leaf_plan(format!("package {}", packages.join(" "))))
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let spec = kiln_validator_sdk::parse_run_spec(&spec)?;
        let packages = packages(&spec)?.join(" ");
        let distro = host::distro();
        let family = host::family_of(&distro);
        let tools = Tools::for_distro(&distro, family.as_deref())?;
        let check = (tools.check)(&packages);
        match run_checked(&check, &[]) {
            Ok(_) => Ok(()),
            Err(missing) if test_only => Err(missing),
            Err(_) => {
                run_checked(&(tools.install)(&packages), &[])?;
                run_checked(&check, &[])?;
                host::note_change(&format!("installed {packages}"));
                Ok(())
            }
        }
    }
}

/// How one family's package manager checks and installs. Each check takes
/// the whole list in one command and fails when any package is missing;
/// each install runs without asking anything.
struct Tools {
    check: fn(&str) -> String,
    install: fn(&str) -> String,
}

/// The families the package validator installs on, for messages.
const SUPPORTED_FAMILIES: &str = "debian, redhat, suse, alpine, arch, mageia, void, altlinux";

impl Tools {
    fn for_distro(distro: &str, family: Option<&str>) -> Result<Tools, String> {
        let tools = match family.unwrap_or(distro) {
            "debian" => Tools {
                check: |p| format!("dpkg -s {p}"),
                install: |p| format!("DEBIAN_FRONTEND=noninteractive apt-get -y install {p}"),
            },
            // Sahara's `yum install -y`, through dnf where the guest has it
            // (dnf replaced yum on newer releases; older ones only have yum).
            "redhat" => Tools {
                check: |p| format!("rpm -q {p}"),
                install: |p| {
                    format!(
                        "if command -v dnf >/dev/null 2>&1; then dnf install -y {p}; else yum install -y {p}; fi"
                    )
                },
            },
            "suse" => Tools {
                check: |p| format!("rpm -q {p}"),
                install: |p| {
                    format!("zypper --non-interactive install --auto-agree-with-licenses {p}")
                },
            },
            // Without a fresh index a new image's apk finds no package.
            "alpine" => Tools {
                check: |p| format!("apk info -e {p}"),
                install: |p| format!("apk add --update-cache {p}"),
            },
            // --needed: packages already there are not reinstalled.
            "arch" => Tools {
                check: |p| format!("pacman -Q {p}"),
                install: |p| format!("pacman -S --noconfirm --needed {p}"),
            },
            "mageia" => Tools {
                check: |p| format!("rpm -q {p}"),
                install: |p| format!("urpmi --auto {p}"),
            },
            // xbps-query takes one package, so the check loops in one command.
            "void" => Tools {
                check: |p| {
                    format!(
                        "for p in {p}; do xbps-query \"$p\" >/dev/null || {{ echo \"package $p is not installed\" >&2; exit 1; }}; done"
                    )
                },
                install: |p| format!("xbps-install -Sy {p}"),
            },
            // ALT Linux: rpm packages, installed with its apt-get.
            "altlinux" => Tools {
                check: |p| format!("rpm -q {p}"),
                install: |p| format!("apt-get -y install {p}"),
            },
            "gentoo" => {
                return Err(format!(
                    "the package validator does not install on distro `{distro}` (gentoo family): \
                     portage builds packages from source; use a `script` validator running emerge"
                ))
            }
            _ => {
                return Err(format!(
                    "the package validator does not know the package manager of distro `{distro}` \
                     (it knows the families {SUPPORTED_FAMILIES}); use `os_case` to give this distro its own steps"
                ))
            }
        };
        Ok(tools)
    }
}

/// The rendered package names of a spec, in order.
fn packages(spec: &Value) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::new();
    match spec {
        Value::Array(items) if items.is_empty() => {
            return Err(spec_error("", "the package list is empty"))
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                out.push(one_package(item, &pointer_index("", i))?);
            }
        }
        other => out.push(one_package(other, "")?),
    }
    Ok(out)
}

fn one_package(item: &Value, pointer: &str) -> Result<String, SpecError> {
    match item {
        Value::String(name) => checked_word(name, pointer, "a package name"),
        Value::Object(map) if map.len() == 1 => {
            let (name, props) = map.iter().next().expect("one entry");
            let name_ptr = pointer_key(pointer, name);
            let name = checked_word(name, &name_ptr, "a package name")?;
            match props {
                Value::Null => Ok(name),
                Value::Object(props) => {
                    let mut version = None;
                    for (key, value) in props {
                        let ptr = pointer_key(&name_ptr, key);
                        match key.as_str() {
                            "version" => {
                                version = Some(checked_word(
                                    expect_str(value, &ptr, "version")?,
                                    &ptr,
                                    "a version",
                                )?)
                            }
                            other => {
                                return Err(spec_error(
                                    &ptr,
                                    format!("unknown package option `{other}` (known: version)"),
                                ))
                            }
                        }
                    }
                    Ok(match version {
                        Some(v) => format!("{name}-{v}"),
                        None => name,
                    })
                }
                other => Err(spec_error(
                    &name_ptr,
                    format!(
                        "package options must be a map like {{version: 1.2}}, found {}",
                        kind_of(other)
                    ),
                )),
            }
        }
        other => Err(spec_error(
            pointer,
            format!(
                "a package must be a name or a one-key map `name: {{version: ...}}`, found {}",
                kind_of(other)
            ),
        )),
    }
}

/// Package names and versions go into a shell command line, so only the
/// characters package managers use are allowed, and none first that a
/// command or the shell would read otherwise (`-x` an option, `~x` a home
/// directory).
fn checked_word(word: &str, pointer: &str, what: &str) -> Result<String, SpecError> {
    let ok = !word.is_empty()
        && !word.starts_with(['-', '~'])
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-:~".contains(&b));
    if ok {
        Ok(word.to_string())
    } else {
        Err(spec_error(
            pointer,
            format!(
                "`{word}` is not {what}: use letters, digits and . _ + - : ~ (not - or ~ first)"
            ),
        ))
    }
}

export_validator!(Package);
