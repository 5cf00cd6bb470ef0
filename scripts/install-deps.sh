#!/usr/bin/env bash
# Installs everything klined needs to build, run its replay exchange and
# run its tests: Debian packages (as root, or through sudo), the Python
# packages of the test suite and the page test's playwright-core (npm,
# tests/web/package-lock.json). Safe to run again. The page's chart library
# is not installed here: the build fetches it (web/meson.build).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    build-essential meson ninja-build pkg-config clang clang-format
    libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libinih-dev
    libcmocka-dev zlib1g-dev libzip-dev
    libwebsockets-dev libwebsockets-evlib-uv librdkafka-dev libsystemd-dev
    sqlite3 python3 python3-pip kcat openjdk-17-jre-headless maven scdoc
    libclang-rt-14-dev cppcheck clang-tidy valgrind openssl iproute2 libseccomp2
    nodejs npm chromium prometheus
)

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
if ! $PY -c 'import aiohttp, pytest, pytest_timeout, xdist, confluent_kafka' 2>/dev/null; then
    echo "install-deps: pip install -r tests/requirements.txt"
    $PY -m pip install -q -r tests/requirements.txt 2>/dev/null ||
        $PY -m pip install -q --break-system-packages -r tests/requirements.txt
fi
# playwright-core drives Debian's chromium (no browser download) in the page test.
if [ ! -d tests/web/node_modules/playwright-core ]; then
    echo "install-deps: npm ci --prefix tests/web"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/web --no-audit --no-fund >/dev/null
fi
# Apache Kafka (KRaft) for the tests and the demo, from Maven Central, cached.
$PY tests/kafka/kafka.py fetch
echo "install-deps: ok"
