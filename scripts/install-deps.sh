#!/usr/bin/env bash
# Installs everything klined needs to build, run its replay exchange and
# run its tests: Debian packages (as root, or through sudo), the Python
# packages of the test suite and the page test's playwright-core (npm,
# tests/web/package-lock.json). Safe to run again. The page's chart library
# is not installed here: the build fetches it (web/meson.build).
#   scripts/install-deps.sh --runtime   only what building klined and running
#       scripts/demo need: the compiler and libraries, the page's npm, sqlite3,
#       the replay exchange's aiohttp, and Kafka's jars with a JRE (the demo
#       runs the speed layer through a real broker).
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=false
if [ "${1:-}" = --runtime ]; then
    runtime=true
fi

RUNTIME_PACKAGES=(
    build-essential meson ninja-build pkg-config
    libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libinih-dev
    libcmocka-dev zlib1g-dev libzip-dev libssl-dev
    libwebsockets-dev libwebsockets-evlib-uv librdkafka-dev libsystemd-dev
    sqlite3 python3 python3-pip openjdk-17-jre-headless maven scdoc nodejs npm
)
# The test suite's tools: static checks, sanitizer runtimes, valgrind, the page
# test's browser, promtool, the hostile tests' tools, and the Debian package's
# build, lintian and the systemd-nspawn test (tests/system).
TEST_PACKAGES=(
    clang clang-format libclang-rt-14-dev cppcheck clang-tidy valgrind kcat
    openssl iproute2 libseccomp2 chromium prometheus
    dpkg-dev debhelper lintian systemd-container debootstrap
)
APT_PACKAGES=("${RUNTIME_PACKAGES[@]}")
$runtime || APT_PACKAGES+=("${TEST_PACKAGES[@]}")

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${APT_PACKAGES[@]}"; do
    # A nodejs from elsewhere (NodeSource) ships npm itself and conflicts with Debian's.
    [ "$p" = npm ] && command -v npm >/dev/null && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if $runtime; then # the replay exchange's aiohttp, Kafka's jars: nothing of the test suite
    if ! $PY -c 'import aiohttp' 2>/dev/null; then
        echo "install-deps: pip install aiohttp (the replay exchange)"
        req=$(grep '^aiohttp' tests/requirements.txt)
        $PY -m pip install -q "$req" 2>/dev/null ||
            $PY -m pip install -q --break-system-packages "$req"
    fi
    $PY tests/kafka/kafka.py fetch
    echo "install-deps: ok (runtime only; scripts/install-deps.sh without --runtime adds the test tools)"
    exit 0
fi
if ! $PY -c 'import aiohttp, pytest, pytest_timeout, xdist, confluent_kafka' 2>/dev/null; then
    echo "install-deps: pip install -r tests/requirements.txt"
    $PY -m pip install -q -r tests/requirements.txt 2>/dev/null ||
        $PY -m pip install -q --break-system-packages -r tests/requirements.txt
fi
if ! $PY -c 'import prophet, pandas' 2>/dev/null; then
    echo "install-deps: pip install -r tests/requirements-forecast.txt"
    $PY -m pip install -q -r tests/requirements-forecast.txt 2>/dev/null ||
        $PY -m pip install -q --break-system-packages -r tests/requirements-forecast.txt
fi
# playwright-core drives Debian's chromium (no browser download) in the page test.
if [ ! -d tests/web/node_modules/playwright-core ]; then
    echo "install-deps: npm ci --prefix tests/web"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/web --no-audit --no-fund >/dev/null
fi
# Apache Kafka (KRaft) for the tests and the demo, from Maven Central, cached.
$PY tests/kafka/kafka.py fetch
echo "install-deps: ok"
