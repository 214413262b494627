#!/usr/bin/env bash
# Makes the Python venv the netem benchmark drives Ansible and testinfra
# from (PyPI): ansible-core 2.19, pytest-testinfra and pytest-xdist.
#
#   benches/netem/venv.sh [DIR]    # default /var/tmp/kiln-netem-venv
set -euo pipefail
venv=${1:-/var/tmp/kiln-netem-venv}
python3 -m venv "$venv"
"$venv/bin/pip" install -q 'ansible-core>=2.19,<2.20' pytest-testinfra pytest-xdist
