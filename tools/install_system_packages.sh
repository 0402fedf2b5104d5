#!/usr/bin/env bash
# The system packages `make test` needs besides Python (`make lab` needs none of them):
# Chromium for the browser tests (Debian's /usr/bin/chromium, tests/browser) and PostgreSQL
# for the gradebook tests (tests/grader/test_postgres.py). Installs only what is missing,
# with apt-get (through sudo when not root), and says what and why; when nothing is
# missing it does nothing and says nothing, so a second `make test` goes straight on.
set -euo pipefail
# Where Debian's PostgreSQL packages put initdb (a test points this elsewhere).
POSTGRESQL_LIB="${POSTGRESQL_LIB:-/usr/lib/postgresql}"

needed=()
reasons=()
if ! command -v chromium >/dev/null 2>&1; then
    needed+=(chromium)
    reasons+=("Chromium for the browser tests")
fi
if ! ls "$POSTGRESQL_LIB"/*/bin/initdb >/dev/null 2>&1; then
    needed+=(postgresql)
    reasons+=("PostgreSQL for the gradebook tests")
fi
if [ ${#needed[@]} -eq 0 ]; then
    exit 0
fi
why="$(printf '%s and ' "${reasons[@]}")"
why="${why% and }"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "make test needs $why, and this machine has no apt-get:" \
         "install them yourself (Debian's package names: ${needed[*]}), then run make test again" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "make test needs $why: run it as root, or install sudo, to install ${needed[*]}" >&2
        exit 1
    fi
    SUDO="sudo"
fi

echo "make test: installing ${needed[*]} (${why}) with ${SUDO:+sudo }apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}"
echo "make test: installed ${needed[*]}"
