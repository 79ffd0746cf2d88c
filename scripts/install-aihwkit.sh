#!/usr/bin/env bash
# IBM aihwkit 1.2.0 into the project's venv: it has no wheel for Python 3.11, so pip builds it
# from source once (about 10-15 min on 2 cores) and keeps the wheel in its cache; later venvs
# on the same machine install that wheel in seconds. Needs OpenBLAS headers (Debian package).
# Usage: scripts/install-aihwkit.sh VENV_BIN CONSTRAINTS
set -euo pipefail
bin=${1:?usage: install-aihwkit.sh VENV_BIN CONSTRAINTS}
constraints=${2:?usage: install-aihwkit.sh VENV_BIN CONSTRAINTS}
pip="$bin/pip -q --disable-pip-version-check"

if ! dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq libopenblas-dev
fi
# its build needs these in the venv (--no-build-isolation: it must build against the venv's torch)
$pip install -c "$constraints" scikit-build pybind11 ninja cmake mypy
jobs=${MAX_JOBS:-$(nproc)}
# --no-deps: its torchvision, scikit-learn and protobuf are not needed by the inference tile
PATH="$bin:$PATH" MAX_JOBS=$jobs CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
  $pip install -c "$constraints" --no-build-isolation --no-deps aihwkit==1.2.0
"$bin/python" -c "import aihwkit; print('aihwkit', aihwkit.__version__, 'installed')"
