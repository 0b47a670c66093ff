#!/usr/bin/env bash
# Installs every build/test dependency from Debian packages (and, with --test, the npm test peers).
# Idempotent: only missing packages are installed. Run as root (or with sudo available).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(build-essential cmake ninja-build pkg-config git time
      libopenmpi-dev openmpi-bin libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libopenblas-dev libssl-dev
      libcurl4-openssl-dev libhdf5-openmpi-dev libgtest-dev libgmock-dev libbenchmark-dev)
if [ $want_test = 1 ]; then
  pkgs+=(python3-numpy python3-h5py nodejs npm golang-go clang libclang-rt-14-dev valgrind strace b3sum lz4
        chromium)  # chromium: headless rendering of the HTML run report (tests/report/chromium.sh)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node/npm may come from outside Debian on some machines: accept any working node >= 18.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ $want_test = 1 ]; then
  cd "$here/tests/conformance"
  if [ ! -f node_modules/.sf-installed ] || [ package-lock.json -nt node_modules/.sf-installed ]; then
    echo "install-deps: installing npm test peers (node-llama-cpp, @huggingface/*)"
    # npm ci refuses this lock (it pins only the linux-x64 prebuilt, the optional others are omitted on purpose);
    # npm install with the committed lock installs the same pinned versions.
    npm install --omit=optional --no-audit --no-fund
    touch node_modules/.sf-installed
  fi
fi
