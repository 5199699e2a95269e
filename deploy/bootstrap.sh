#!/bin/sh
# Set up everything larmkedja needs on a fresh Debian 12 machine; quick and safe to run again.
# Installs Debian packages with apt-get where missing (python3-venv; Kannel, the SMS gateway the
# tests and the demo run on loopback; Chromium, the headless browser of the page tests), then the
# project and its test/demo dependencies (Synapse from PyPI among them) into ./.venv.
set -eu
cd "$(dirname "$0")/.."

missing=""
python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
[ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ] || missing="$missing kannel"
[ -x /usr/lib/kannel/test/fakesmsc ] || missing="$missing kannel-extras"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "bootstrap: apt-get install$missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.larmkedja-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing larmkedja and its dependencies into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]"
    touch "$stamp"
fi
