#!/usr/bin/env bash
# Make sure the system packages the build and the tests use are installed, each
# named here (nothing is left to a Recommends, nor to what a machine happens to have):
#
#   graphviz            dot draws the sequence and state diagrams (sphinx.ext.graphviz)
#   fonts-liberation2   the diagrams' font, Liberation Sans (lab/diagrams.py FONT): the
#                       widths Graphviz lays out with, so the pictures fit a phone
#   fonts-dejavu-core   DejaVu Sans Mono, the diagrams' monospaced font (lab/diagrams.py MONO)
#   socat               a peer we did not write, in the tests
#   netcat-openbsd      the other one: `nc -N` half-closes like shutdown(SHUT_WR)
#   tcpdump             the tests read the published pcap files with `tcpdump -r`
#   python3-venv        only when $PYTHON is Debian's own python3 and lacks venv/ensurepip
#
# On Debian (dpkg and apt-get) each package is checked by name; elsewhere by the
# program or font it provides.  Missing ones are installed with apt-get when we
# are root; otherwise the command to run is printed and we fail, rather than
# build a site without its pictures.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PACKAGES=(graphviz fonts-liberation2 fonts-dejavu-core socat netcat-openbsd tcpdump)

# What each package provides, for a system without dpkg.
provided() {
    case "$1" in
        fonts-liberation2) fc-match --format '%{family}' 'Liberation Sans' 2>/dev/null | grep -q 'Liberation Sans' ;;
        fonts-dejavu-core) fc-match --format '%{family}' 'DejaVu Sans Mono' 2>/dev/null | grep -q 'DejaVu Sans Mono' ;;
        graphviz) command -v dot ;;
        netcat-openbsd) command -v nc ;;
        *) command -v "$1" ;;
    esac >/dev/null 2>&1
}

installed() {
    if command -v dpkg-query >/dev/null 2>&1; then
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
    else
        provided "$1"
    fi
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
# Debian splits venv's pip bootstrap out of python3; a pyenv or python.org build has it.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$EUID" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing system packages: ${missing[*]}" >&2
    echo "install them with:  sudo apt-get install --no-install-recommends ${missing[*]}  (or your system's equivalent)" >&2
    exit 1
fi
echo "Installing system packages: ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be missing or stale: refresh them first.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "System packages ready."
