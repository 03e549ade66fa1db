#!/usr/bin/env bash
# Installs what `make run` / `make test` need on a fresh Debian machine, only when missing.
#   scripts/deps.sh run   — build tools
#   scripts/deps.sh test  — build tools + the real peers the tests use
set -euo pipefail

want=${1:-run}
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

packages=()
need() { # need <command> <package>
  command -v "$1" >/dev/null 2>&1 || packages+=("$2")
}
need cc gcc
need make make
need pkg-config pkg-config
need curl curl
# The web dashboard (web/) is built with Node.js and npm for `make run` too.
need node nodejs
need npm npm
if [ "$want" = test ]; then
  need ffmpeg ffmpeg
  # libFuzzer (the fuzz smoke run) is C++.
  need c++ g++
  need ffprobe ffmpeg
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  # Real services the control plane and bench tests start themselves.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
  need redis-server redis-server
  need nginx nginx
  [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || packages+=(libnginx-mod-rtmp)
  # The recording tests start moto (an S3-compatible server); they pip-install it into a
  # venv under target/testdata when `python3 -m moto.server` is missing.
  need python3 python3
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv python3-pip)
  # deploy/: `promtool check|test rules` (make deploy-test); tests/deploy parses the
  # compose and Kubernetes YAML with Python's yaml.
  need promtool prometheus
  python3 -c 'import yaml' >/dev/null 2>&1 || packages+=(python3-yaml)
fi

if [ ${#packages[@]} -gt 0 ]; then
  echo "deps: installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}" ca-certificates
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: installing the Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if [ "$want" = test ]; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
if [ "$want" = test ]; then
  # The notification tests start aiosmtpd (a real SMTP server, from PyPI) as a process. It
  # goes into the venv the tests use (target/testdata/aiosmtpd-venv) unless the system
  # Python has it; the tests install it there themselves too, and fail if they cannot.
  if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    root=$(cd "$(dirname "$0")/.." && pwd)
    venv="${CARGO_TARGET_DIR:-$root/target}/testdata/aiosmtpd-venv"
    if ! "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
      echo "deps: installing aiosmtpd into $venv"
      python3 -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet aiosmtpd
    fi
  fi
fi
