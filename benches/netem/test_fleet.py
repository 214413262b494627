"""The netem benchmark's ten checks (tests/fixtures/fleet/bench/image.yaml)
as pytest-testinfra tests, one test per validator (architecture and
architecture-is-known share one, since the second takes the first's
output), run against every host
given with --hosts (testinfra parametrizes each test per host; pytest-xdist
spreads the items over workers). Keep in step with image.yaml and
playbook.yml."""


def test_package_dpkg_apt_bash(host):
    for name in ("dpkg", "apt", "bash"):
        assert host.package(name).is_installed


def test_package_coreutils(host):
    assert host.package("coreutils").is_installed


def test_package_debianutils_sed_grep(host):
    for name in ("debianutils", "sed", "grep"):
        assert host.package(name).is_installed


def test_os_case_debian_base_files(host):
    if host.system_info.distribution == "debian":
        assert host.package("base-files").is_installed


def test_os_release_readable(host):
    host.run_expect([0], "test -r /etc/os-release")


def test_sources_name_bookworm(host):
    host.run_expect([0], "grep -q bookworm /etc/apt/sources.list")


def test_root_home_exists(host):
    host.run_expect([0], "test -d /root")


def test_tmp_is_writable(host):
    host.run_expect([0], "test -w /tmp")


def test_architecture(host):
    arch = host.check_output("dpkg --print-architecture")
    assert arch
    # The next check takes this value, as kiln's `output: arch` passes it on.
    host.run_expect([0], "test -n %s", arch)
