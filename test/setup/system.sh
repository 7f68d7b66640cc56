#!/usr/bin/env bash
# Debian packages the tests drive as real parts: the Jupyter client stack, ipykernel for the
# benchmark's baseline, the Notebook server and chromium for browser tests.
set -euo pipefail
pkgs=(python3-jupyter-client jupyter-client python3-nbclient jupyter-nbconvert jupyter-console
      jupyter-notebook python3-ipykernel chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
[[ ${#missing[@]} -eq 0 ]] && { echo "system packages: present"; exit 0; }
if [[ $(id -u) -ne 0 ]]; then
  echo "system packages missing (${missing[*]}); run as root or install them with apt-get" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
