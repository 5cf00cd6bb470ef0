"""The test broker works end to end with real clients: confluent-kafka (its
bundled, recent librdkafka) and kcat on Debian's librdkafka 2.0.2, the C
library klined links, including a consumer group (JoinGroup v0, which
librdkafka 2.0.2 needs and Kafka 4.1 serves again)."""
import ctypes
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest_kafka import kafka_mod

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------ helpers

def _listening(pid):
    """The (ip, port) of every TCP socket that process pid listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            hexip, hexport = f[1].split(":")
            raw = bytes.fromhex(hexip)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(raw)
            if v6 and ip.ipv4_mapped:  # Java listens on ::ffff:127.0.0.1
                ip = ip.ipv4_mapped
            out.append((str(ip), int(hexport, 16)))
    return out


def _ck():
    try:
        import confluent_kafka
    except ImportError:
        pytest.fail("confluent-kafka is not installed: pip install -r tests/requirements.txt")
    return confluent_kafka


def _produce_ck(bootstrap, topic, records):
    ck = _ck()
    p = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for k, v in records:
        p.produce(topic, key=k, value=v,
                  on_delivery=lambda err, _msg: err and errors.append(err))
    assert p.flush(30) == 0, "messages left unsent after 30 s"
    assert not errors, errors


def _consume_ck(bootstrap, topic, n, group=None, timeout=30):
    ck = _ck()
    c = ck.Consumer({"bootstrap.servers": bootstrap,
                     "group.id": group or f"g-{uuid.uuid4().hex[:8]}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": True})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None or m.error().code() == ck.KafkaError._PARTITION_EOF, m.error()
            if m.error() is None:
                got.append((m.key(), m.value()))
    finally:
        c.close()
    return got


def _kcat():
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if not kcat:
        pytest.fail("kcat is not installed (Debian package kcat): run scripts/install-deps.sh")
    return kcat


def _kcat_run(args, stdin=None, timeout=60):
    p = subprocess.run([_kcat(), *args], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"kcat {' '.join(args)} exited {p.returncode}:\n{p.stderr}"
    return p.stdout


# ------------------------------------------------------------------ the shared broker

def test_broker_is_up_on_loopback_only(kafka_broker):
    assert kafka_broker.running
    host, port = kafka_broker.bootstrap.split(":")
    assert host == "127.0.0.1" and int(port) == kafka_broker.port
    assert kafka_mod.metadata_brokers(host, int(port)) == [(1, "127.0.0.1", kafka_broker.port)]
    listening = _listening(kafka_broker.pid)
    assert sorted(p for _, p in listening) == sorted([kafka_broker.port,
                                                      kafka_broker.controller_port])
    assert all(ip == "127.0.0.1" for ip, _ in listening), listening
    version = tuple(int(x) for x in kafka_mod.kafka_version().split(".")[:2])
    assert version >= (4, 1), "librdkafka 2.0.2 needs JoinGroup v0: Kafka 4.0 lacks it"


def test_confluent_kafka_produce_consume(kafka_broker, kafka_topic):
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    _produce_ck(kafka_broker.bootstrap, kafka_topic, records)
    assert _consume_ck(kafka_broker.bootstrap, kafka_topic, len(records)) == records


def test_kcat_links_the_system_librdkafka():
    out = subprocess.run([_kcat(), "-V"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"librdkafka (\S+)", out)
    assert m, out
    system = ctypes.CDLL("librdkafka.so.1")
    system.rd_kafka_version_str.restype = ctypes.c_char_p
    assert m.group(1) == system.rd_kafka_version_str().decode()
    print(f"kcat uses librdkafka {m.group(1)}")


def test_kcat_produce_consume_and_group(kafka_broker, kafka_topic):
    """librdkafka 2.0.2 (Debian bookworm) as producer, plain consumer and group
    consumer: the group read works only if the broker serves JoinGroup v0."""
    b, t = kafka_broker.bootstrap, kafka_topic
    first = [f"k{i}:v{i}" for i in range(10)]
    _kcat_run(["-b", b, "-t", t, "-P", "-K:"], stdin="\n".join(first) + "\n")
    out = _kcat_run(["-b", b, "-t", t, "-C", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n"])
    assert out.splitlines() == first

    group = f"g-{uuid.uuid4().hex[:8]}"
    gargs = ["-b", b, "-G", group, "-e", "-q", "-f", "%k:%s\n",
             "-X", "auto.offset.reset=earliest", t]
    p = subprocess.run([_kcat(), "-d", "feature", *gargs], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr[-4000:]
    assert p.stdout.splitlines() == first
    # librdkafka 2.0.2 turns its balanced-consumer feature on only if the broker
    # offers JoinGroup v0 (Kafka 4.0.0 offers 2..9: the first join still works
    # there, but the feature is off and later rejoins are not served)
    assert "Enabling feature BrokerBalancedConsumer" in p.stderr
    assert "Disabling feature BrokerBalancedConsumer" not in p.stderr
    # the group committed its offsets when it closed: it resumes after them
    second = [f"k{i}:v{i}" for i in range(10, 15)]
    _kcat_run(["-b", b, "-t", t, "-P", "-K:"], stdin="\n".join(second) + "\n")
    assert _kcat_run(gargs).splitlines() == second

    # and what confluent-kafka wrote, Debian's librdkafka reads
    _produce_ck(b, t, [(b"ck", b"from-confluent-kafka")])
    out = _kcat_run(["-b", b, "-t", t, "-C", "-o", "-1", "-e", "-q", "-f", "%k:%s\n"])
    assert out.splitlines() == ["ck:from-confluent-kafka"]


# ------------------------------------------------------------------ private brokers

def test_kill_restart_and_wipe(kafka_factory):
    b = kafka_factory()
    boot, workdir = b.bootstrap, b.workdir
    _produce_ck(boot, "keep", [(b"a", b"1"), (b"b", b"2")])

    assert b.kill() == -signal.SIGKILL  # a crash: recovers its log, same ports
    assert not b.running
    b.start()
    assert b.bootstrap == boot
    assert _consume_ck(boot, "keep", 2) == [(b"a", b"1"), (b"b", b"2")]

    b.restart(down=1)  # SIGTERM, down a while, back with its data
    assert b.bootstrap == boot
    _produce_ck(boot, "keep", [(b"c", b"3")])
    assert _consume_ck(boot, "keep", 3) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]

    b.restart(wipe=True)  # back empty
    assert b.bootstrap == boot
    assert not any(b.data_dir.glob("keep-*"))
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": boot})
    assert "keep" not in admin.list_topics(timeout=10).topics

    b.stop()
    assert not b.running and not workdir.exists()
    assert b.stop_seconds is not None


def test_cli_run_prints_bootstrap_and_stops_on_sigterm():
    p = subprocess.Popen([sys.executable, str(HERE / "kafka.py"), "run", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line, p.stderr.read() if p.poll() is not None else "no output"
        info = json.loads(line)
        host, port = info["bootstrap"].split(":")
        assert host == "127.0.0.1"
        assert kafka_mod.metadata_brokers(host, int(port))[0][2] == int(port)
        assert Path(info["workdir"]).is_dir()
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0
        assert not Path(info["workdir"]).exists()
        with pytest.raises(OSError):
            kafka_mod.metadata_brokers(host, int(port), timeout=1)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
