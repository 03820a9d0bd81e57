"""Builds the Python wheel of `make dist`: the sqlite_sync package with the
compiled extension inside it (sqlite_sync/sync.so, where find_extension()
looks first), written with zipfile, so no build backend (setuptools, which
pip would fetch from the network) is needed.

    python3 bindings/python/build_wheel.py --ext ext/sync.so --out dist

The wheel is py3-none-PLATFORM (the extension is native code, not a Python
module: any Python 3 of that platform loads it) and not manylinux: the
extension links the system's libcurl and libcjson, which the machine that
installs it needs too. Prints the wheel's path.
"""
import argparse
import base64
import hashlib
import os
import re
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(HERE, "sqlite_sync")
# Files of the package that go into the wheel (not _installed.py, which
# `make install` writes, nor caches).
PKG_FILES = ("__init__.py", "py.typed")


def version():
    with open(os.path.join(PKG, "__init__.py")) as f:
        m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if not m:
        raise SystemExit("build_wheel: no __version__ in sqlite_sync/__init__.py")
    return m.group(1)


def platform_tag():
    return re.sub(r"[-.]", "_", sysconfig.get_platform())


def metadata(ver):
    with open(os.path.join(HERE, "README.md")) as f:
        readme = f.read()
    return ("Metadata-Version: 2.1\n"
            "Name: sqlite-sync\n"
            f"Version: {ver}\n"
            "Summary: Offline-first sync for SQLite: the Python binding of the sqlite-sync"
            " extension, with the extension\n"
            "Requires-Python: >=3.8\n"
            "Classifier: Programming Language :: Python :: 3\n"
            "Classifier: Topic :: Database\n"
            "Classifier: Typing :: Typed\n"
            "Description-Content-Type: text/markdown\n\n" + readme)


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ext", required=True, help="the compiled extension (ext/sync.so)")
    ap.add_argument("--out", required=True, help="folder the wheel is written to")
    args = ap.parse_args()
    ver = version()
    tag = f"py3-none-{platform_tag()}"
    info = f"sqlite_sync-{ver}.dist-info"
    suffix = os.path.splitext(args.ext)[1]
    files = []
    for name in PKG_FILES:
        with open(os.path.join(PKG, name), "rb") as f:
            files.append((f"sqlite_sync/{name}", f.read(), 0o644))
    with open(args.ext, "rb") as f:
        files.append((f"sqlite_sync/sync{suffix}", f.read(), 0o755))
    files.append((f"{info}/METADATA", metadata(ver).encode(), 0o644))
    files.append((f"{info}/WHEEL", ("Wheel-Version: 1.0\n"
                                    "Generator: sqlite-sync build_wheel.py\n"
                                    "Root-Is-Purelib: false\n"
                                    f"Tag: {tag}\n").encode(), 0o644))
    files.append((f"{info}/top_level.txt", b"sqlite_sync\n", 0o644))
    record = "\n".join([record_line(n, d) for n, d, _ in files] + [f"{info}/RECORD,,", ""])
    files.append((f"{info}/RECORD", record.encode(), 0o644))

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"sqlite_sync-{ver}-{tag}.whl")
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in files:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = (0o100000 | mode) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    os.replace(tmp, path)
    print(path)


if __name__ == "__main__":
    main()
