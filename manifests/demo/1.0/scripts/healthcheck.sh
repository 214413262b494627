#!/bin/sh
# Copied to /tmp/healthcheck.sh by the demo manifest: reports the tools the
# image was packed with.
for tool in less file; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done
echo healthy
