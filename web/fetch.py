#!/usr/bin/env python3
"""Fetch one file of an npm package at build time, pinned and verified.

`npm pack SPEC` downloads the package tarball from the npm registry (or
npm's own cache when offline); its sha512 must equal INTEGRITY (the
registry's `dist.integrity`), then MEMBER is extracted to OUT, and the
package's LICENSE beside it. Nothing fetched is ever committed: the files
land in the build tree and `meson install` puts them in the data dir.
"""
import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--integrity", required=True)
    ap.add_argument("--member", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--license-out", required=True)
    a = ap.parse_args()
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    name, version = a.spec.rsplit("@", 1)
    tgz = cache / f"{name.replace('/', '-').lstrip('@')}-{version}.tgz"

    def ok():
        if not tgz.exists():
            return False
        algo, want = a.integrity.split("-", 1)
        got = base64.b64encode(hashlib.new(algo, tgz.read_bytes()).digest()).decode()
        return got == want

    if not ok():
        p = subprocess.run(["npm", "pack", a.spec, "--prefer-offline", "--json",
                            "--pack-destination", str(cache)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"fetch.py: npm pack {a.spec} failed:\n{p.stderr[-2000:]}")
        fn = json.loads(p.stdout)[0]["filename"]
        if (cache / fn) != tgz:
            (cache / fn).replace(tgz)
        if not ok():
            tgz.unlink()
            sys.exit(f"fetch.py: {a.spec}: the tarball does not match {a.integrity}")
    with tarfile.open(tgz) as t:
        for member, out in ((a.member, a.out), ("package/LICENSE", a.license_out)):
            f = t.extractfile(member)
            if f is None:
                sys.exit(f"fetch.py: {a.spec} has no {member}")
            Path(out).write_bytes(f.read())


if __name__ == "__main__":
    main()
