#!/usr/bin/env bash
# Make sure the programs the build and the tests run are installed (Debian packages).
#
#   dot     (graphviz)         draws the sequence and state diagrams (sphinx.ext.graphviz)
#   socat   (socat)            a peer we did not write, in the tests
#   nc      (netcat-openbsd)   the other one: `nc -N` half-closes like shutdown(SHUT_WR)
#
# Installed with apt-get when missing and we are root; otherwise the command to
# run is printed and we fail, rather than build a site without its pictures.
set -euo pipefail

declare -A PACKAGE_OF=([dot]=graphviz [socat]=socat [nc]=netcat-openbsd)

missing=()
for command in "${!PACKAGE_OF[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$command]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$EUID" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing system packages: ${missing[*]}" >&2
    echo "install them with:  sudo apt-get install ${missing[*]}  (or your system's equivalent)" >&2
    exit 1
fi
echo "Installing system packages: ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be missing or stale: refresh them first.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "System packages ready."
