#!/bin/sh
# Installs the Debian packages named on the command line that are missing.
# Used by the Makefile and .ci/run: apt-get as root, sudo otherwise.
set -e
missing=""
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
    missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends $missing ||
  { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $missing; }
