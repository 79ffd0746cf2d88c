#!/usr/bin/env bash
# Install ngspice (+ the shared library PySpice loads) on Debian 12.
# Prefers ngspice 46 from bookworm-backports (KLU solver, OSDI); the backports
# mirror is derived from this machine's own apt sources, never hard-coded.
# Falls back to Debian 12's ngspice 39. Idempotent.
set -euo pipefail

want="ngspice libngspice0 libngspice0-dev"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

have_lib() { ldconfig -p 2>/dev/null | grep -q 'libngspice.so '; }
if command -v ngspice >/dev/null && have_lib; then
  ver=$(dpkg-query -W -f='${Version}' ngspice 2>/dev/null || echo unknown)
  echo "ngspice already installed ($ver)"; exit 0
fi

# The mirror of the main Debian suite, read from the machine's apt configuration.
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /bookworm( |$)/ && u !~ /security/) {print u; exit} }' \
           /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
fi

export DEBIAN_FRONTEND=noninteractive
if [ -n "$mirror" ]; then
  list=/etc/apt/sources.list.d/rramsim-backports.list
  [ -f "$list" ] || echo "deb $mirror bookworm-backports main" | $SUDO tee "$list" >/dev/null
fi
$SUDO apt-get update -qq || true
if [ -n "$mirror" ] && $SUDO apt-get install -y -qq -t bookworm-backports $want; then
  echo "installed ngspice from bookworm-backports"
else
  echo "bookworm-backports unavailable: falling back to Debian 12's ngspice" >&2
  $SUDO apt-get install -y -qq $want
fi
dpkg-query -W -f='ngspice ${Version}\n' ngspice
