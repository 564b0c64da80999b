#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (as root), then run them.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3.11 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch pinned: 2.13.0 is the CPU build; an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q 'torch==2.13.0' -e '.[torch,test]'

ruff check .
ruff format --check .
python -m pytest -q -p no:cacheprovider "$@"
