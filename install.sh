#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine: Fashion-MNIST from Debian's archive (offline-safe),
# then a virtual environment in .venv with nmoe-sim and its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

FMNIST=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
if [ ! -f "$FMNIST" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install.sh: installing Debian package dataset-fashion-mnist" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "install.sh: Fashion-MNIST not found; run 'apt-get install dataset-fashion-mnist' as root" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch and torchvision must resolve together from the registry (never the on-disk CPU-only torch
# wheel: PyPI's torchvision does not import next to it).
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" \
  >.venv/pip-install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/pip-install.log >&2
  echo "install.sh: pip install failed (log: .venv/pip-install.log)" >&2
  exit 1
fi
.venv/bin/python -c "import nmoe_sim.engine" \
  || { echo "install.sh: the environment in .venv is broken; remove .venv and re-run" >&2; exit 1; }
# The network core compiled with mypyc (nmoe_sim/native.py: 1.2-1.6x faster simulated transfers),
# rebuilt only when a network source changed. Without a C compiler or Python's headers the
# pure-Python modules run, with the same results.
if ! .venv/bin/python -c "import sys, nmoe_sim.native as n; sys.exit(n.current_modules() is None)"; then
  if ! .venv/bin/python -c "import nmoe_sim.native as n; n.build()" >.venv/native-build.log 2>&1; then
    echo "install.sh: compiled network core not built (log: .venv/native-build.log); using pure Python" >&2
  fi
fi
