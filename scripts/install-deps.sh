#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages. Idempotent; run as root
# (or with sudo available). Skips apt entirely when everything is already installed.
set -euo pipefail
# --help prints the comment above.
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi
if [ $# -gt 0 ]; then
  echo "install-deps: takes no arguments (got '$*')" >&2
  exit 2
fi

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libboost-dev libtbb-dev llvm-19-dev libzstd-dev
  libspdlog-dev libfmt-dev libre2-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  curl
  python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
