#!/usr/bin/env bash
# Installs everything klined needs to build, run its replay exchange and
# run its tests: Debian packages (as root, or through sudo) and the Python
# packages of the test suite. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    build-essential meson ninja-build pkg-config clang clang-format
    libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libinih-dev
    libcmocka-dev zlib1g-dev libzip-dev
    libwebsockets-dev libwebsockets-evlib-uv librdkafka-dev libsystemd-dev
    sqlite3 python3 python3-pip kcat openjdk-17-jre-headless maven scdoc
    libclang-rt-14-dev cppcheck clang-tidy valgrind openssl
)

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c 'import aiohttp, pytest, pytest_timeout, confluent_kafka' 2>/dev/null; then
    echo "install-deps: pip install -r tests/requirements.txt"
    $PY -m pip install -q -r tests/requirements.txt 2>/dev/null ||
        $PY -m pip install -q --break-system-packages -r tests/requirements.txt
fi
# Apache Kafka (KRaft) for the tests and the demo, from Maven Central, cached.
$PY tests/kafka/kafka.py fetch
echo "install-deps: ok"
