#!/bin/sh
# Prints the distribution's version (e.g. 12.8); kiln stores it in os_version.
. /etc/os-release
cat /etc/debian_version 2>/dev/null || echo "${VERSION_ID:-unknown}"
