"""klined as a user first meets it: run from the build tree it serves the page
without being told where the page is; a missing page file names the
directory it was looked for in; and a clean start with everything up (REST,
websocket, Kafka, the page) logs no warning."""
import re
import socket
import urllib.error
import urllib.request

from conftest import KLINED, read_log, stop, wait_for
from conftest_kafka import ready_topic
from test_speed import live, ws_minutes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def serving(proc, port):
    wait_for(lambda: "serving http://" in read_log(proc), timeout=60)
    return port


def test_page_from_the_build_tree(replay, klined):
    # KLINED_BIN may be the ASan build: its web/ sits beside its daemon/ too.
    assert (KLINED.parent.parent / "meson-private").is_dir(), "run from a meson build tree"
    srv = replay(speed=0)
    port = free_port()
    p = klined(srv.rest_url, "--kafka-brokers", "off", "--http-listen",
               f"127.0.0.1:{port}").start()
    serving(p, port)
    status, body = get(port, "/")
    assert status == 200 and b"<html" in body.lower(), (status, body[:200])
    status, _ = get(port, "/lightweight-charts.js")
    assert status == 200
    assert str(KLINED.parent.parent / "web") in read_log(p)
    stop(p)


def test_missing_page_file_names_the_directory(replay, klined, tmp_path):
    empty = tmp_path / "no-page-here"
    empty.mkdir()
    srv = replay(speed=0)
    port = free_port()
    p = klined(srv.rest_url, "--kafka-brokers", "off", "--http-listen", f"127.0.0.1:{port}",
               "--http-assets", str(empty)).start()
    serving(p, port)
    status, body = get(port, "/")
    assert status == 404 and str(empty).encode() in body, body
    log = read_log(p)
    assert str(empty) in log and "serving http://" in log
    stop(p)


def test_clean_start_logs_no_warning(replay, klined, kafka_broker, kafka_topic):
    """What `journalctl -u klined -p warning` must show on a clean start: nothing.
    lws's log hook is process-wide: the page's adopted connections used to be
    logged as warnings by the websocket side's hook."""
    ready_topic(kafka_broker, kafka_topic)
    srv = replay(start="2023-03-10T00:00:30Z", speed=60)
    port = free_port()
    k = live(klined, srv, kafka_broker, kafka_topic, "--http-listen", f"127.0.0.1:{port}")
    p = k.start()
    wait_for(lambda: ws_minutes(k.db) > 0, timeout=90)
    for path in ("/", "/app.js", "/api/status", "/metrics"):
        assert get(port, path)[0] == 200, path
    stop(p)
    log = read_log(p)
    bad = [ln for ln in log.splitlines() if re.match(r"klined\[(warn|error)\]", ln)]
    assert not bad, "\n".join(bad)
    assert p.returncode == 0
