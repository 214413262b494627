//! The `package` validator type: checks that packages are installed and, when
//! reconciling, installs them with the distro's package manager.
//!
//! Spec: a name (`java`), a map with a version (`{java: {version: "8"}}`), or
//! a list mixing both. A versioned package is rendered `name-version`, as
//! Sahara did.

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
        let check = format!("{} {packages}", tools.check);
        match run_checked(&check, &[]) {
            Ok(_) => Ok(()),
            Err(missing) if test_only => Err(missing),
            Err(_) => {
                run_checked(&tools.install(&packages), &[])?;
                run_checked(&check, &[])?;
                host::note_change(&format!("installed {packages}"));
                Ok(())
            }
        }
    }
}

/// The commands that check and install packages on one family of distros.
struct Tools {
    check: &'static str,
    install_prefix: &'static str,
}

impl Tools {
    fn for_distro(distro: &str, family: Option<&str>) -> Result<Tools, String> {
        match family.unwrap_or(distro) {
            "debian" => Ok(Tools {
                check: "dpkg -s",
                install_prefix: "DEBIAN_FRONTEND=noninteractive apt-get -y install",
            }),
            // dnf replaced yum on newer releases; older ones only have yum.
            "redhat" => Ok(Tools {
                check: "rpm -q",
                install_prefix: "yum install -y",
            }),
            "suse" => Ok(Tools {
                check: "rpm -q",
                install_prefix: "zypper --non-interactive install",
            }),
            _ => Err(format!(
                "the package validator does not know the package manager of distro `{distro}`"
            )),
        }
    }

    fn install(&self, packages: &str) -> String {
        if self.install_prefix.starts_with("yum ") {
            format!("if command -v dnf >/dev/null 2>&1; then dnf install -y {packages}; else yum install -y {packages}; fi")
        } else {
            format!("{} {packages}", self.install_prefix)
        }
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
/// characters package managers use are allowed.
fn checked_word(word: &str, pointer: &str, what: &str) -> Result<String, SpecError> {
    let ok = !word.is_empty()
        && !word.starts_with('-')
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-:~".contains(&b));
    if ok {
        Ok(word.to_string())
    } else {
        Err(spec_error(
            pointer,
            format!("`{word}` is not {what}: use letters, digits and . _ + - : ~"),
        ))
    }
}

export_validator!(Package);
