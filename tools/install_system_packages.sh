#!/usr/bin/env bash
# The system packages the make targets need besides Python, installed only when missing,
# with apt-get (through sudo when not root), saying what and why; when nothing is missing
# it does nothing and says nothing, so a second `make` goes straight on.
#   install_system_packages.sh setup   Python's venv module (`make setup`, so `make lab`
#                                      too): Debian's own Python lacks it until
#                                      python3-venv is installed; libseccomp, for the
#                                      kernels' system call policy (grader/run/syscalls.py;
#                                      apt itself needs it, so Debian rarely lacks it)
#   install_system_packages.sh test    that, Chromium for the browser tests (Debian's
#                                      /usr/bin/chromium, tests/browser) and PostgreSQL
#                                      for the gradebook tests (tests/grader/test_postgres.py)
set -euo pipefail
target="${1:-test}"
PYTHON="${PYTHON:-python3}"
# Where Debian's PostgreSQL packages put initdb (a test points this elsewhere).
POSTGRESQL_LIB="${POSTGRESQL_LIB:-/usr/lib/postgresql}"
# Where the dynamic linker finds libseccomp.so.2 (directly, or in a multiarch folder).
LIBSECCOMP_DIRS="${LIBSECCOMP_DIRS:-/usr/lib /lib /usr/lib64 /lib64}"

needed=()
reasons=()
if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
    needed+=(python3-venv)
    reasons+=("Python's venv module for .venv")
fi
has_libseccomp() {
    local dir library
    for dir in $LIBSECCOMP_DIRS; do
        for library in "$dir"/libseccomp.so.2 "$dir"/*/libseccomp.so.2; do
            if [ -e "$library" ]; then
                return 0
            fi
        done
    done
    return 1
}
if ! has_libseccomp; then
    needed+=(libseccomp2)
    reasons+=("libseccomp for the kernels' system call policy")
fi
if [ "$target" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
    needed+=(chromium)
    reasons+=("Chromium for the browser tests")
fi
if [ "$target" = "test" ] && ! ls "$POSTGRESQL_LIB"/*/bin/initdb >/dev/null 2>&1; then
    needed+=(postgresql)
    reasons+=("PostgreSQL for the gradebook tests")
fi
if [ ${#needed[@]} -eq 0 ]; then
    exit 0
fi
why="$(printf '%s and ' "${reasons[@]}")"
why="${why% and }"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "make $target needs $why, and this machine has no apt-get:" \
         "install them yourself (Debian's package names: ${needed[*]}), then run make $target again" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "make $target needs $why: run it as root, or install sudo, to install ${needed[*]}" >&2
        exit 1
    fi
    SUDO="sudo"
fi

echo "make $target: installing ${needed[*]} (${why}) with ${SUDO:+sudo }apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}"
echo "make $target: installed ${needed[*]}"
