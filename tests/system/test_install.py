"""`meson install` on its own: every path the installed files name follows the
configured prefix, sysconfdir and datadir (the unit's --config, the man page,
the commented configuration, the binary's default), and a configuration the
user edited survives the next install (the new default goes beside it)."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from systest import ROOT

KLINED = Path(os.environ.get("KLINED_BIN", ROOT / "build" / "daemon" / "klined"))
BUILD = KLINED.parent.parent


def option(opts, name):
    return next(o["value"] for o in opts if o["name"] == name)


@pytest.fixture(scope="module")
def paths():
    if not (BUILD / "meson-private").is_dir():
        pytest.skip(f"{BUILD} is not a meson build directory")
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", str(BUILD)],
                                     capture_output=True, text=True, check=True).stdout)
    prefix = Path(option(opts, "prefix"))
    return {k: prefix / option(opts, k) for k in ("sysconfdir", "datadir", "sbindir", "mandir")}


def install(dest):
    p = subprocess.run(["meson", "install", "-C", str(BUILD), "--destdir", str(dest),
                        "--no-rebuild"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout + p.stderr


def under(dest, path):
    return dest / str(path).lstrip("/")


def test_installed_paths_follow_the_prefix(paths, tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    conf = paths["sysconfdir"] / "klined" / "klined.conf"
    assert under(dest, conf).is_file()
    unit = next(dest.rglob("klined.service")).read_text()
    assert f"ExecStart={paths['sbindir']}/klined run --config {conf}\n" in unit, unit
    web = paths["datadir"] / "klined" / "web"
    assert f";assets = {web}\n" in under(dest, conf).read_text()
    assert under(dest, web / "index.html").is_file()
    man = under(dest, paths["mandir"] / "man8" / "klined.8")
    if man.exists():
        text = man.read_text().replace("\\&", "")
        assert str(conf) in text and str(web) in text and "@" + "CONFFILE@" not in text
        assert str(paths["datadir"] / "klined" / "schema") in text
    helptext = subprocess.run([str(KLINED), "--help"], capture_output=True, text=True).stdout
    assert f"default {conf};" in helptext, helptext[:600]
    schema = {f.name for f in under(dest, paths["datadir"] / "klined" / "schema").iterdir()}
    assert schema == {f.name for f in (ROOT / "schema").glob("*.sql")}


def test_reinstall_keeps_an_edited_config(paths, tmp_path):
    dest = tmp_path / "dest"
    install(dest)
    conf = under(dest, paths["sysconfdir"] / "klined" / "klined.conf")
    shipped = conf.read_text()
    install(dest)
    assert not conf.with_suffix(".conf.new").exists()
    edited = shipped + "\n[exchange]\nsymbols = SOLUSDT\n"
    conf.write_text(edited)
    install(dest)  # (its message reaches the terminal: meson 1.0 swallows it here)
    assert conf.read_text() == edited, "the user's configuration was overwritten"
    assert conf.with_suffix(".conf.new").read_text() == shipped
