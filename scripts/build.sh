#!/usr/bin/env bash
# Installs the dependencies and builds a preset (default: release, into build/).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
./scripts/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
