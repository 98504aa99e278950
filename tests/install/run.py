"""Install the built artifacts as a user would, each into a fresh virtualenv, and run ``smoke.py`` there.

    python3 tests/install/run.py wheels --dist dist --python python3.11 "Django>=5.2,<5.3" --python ...
    python3 tests/install/run.py sdist  --dist dist --python python3.11 "Django>=5.2,<5.3"

``wheels``: per interpreter, a fresh virtualenv; Django's wheels (and its dependencies') are first fetched
with ``pip download`` into ``--downloads``; then, with ``PATH`` stripped of every directory holding ``cargo``
or ``rustc``, ``pip install --no-index --only-binary :all: --find-links <downloads> dist/<the wheel>
Django``: nothing can be fetched and nothing can be compiled, so only the wheel made for that interpreter
(its own ``cpXY-cpXY`` one, else the ``cp311-abi3`` one) can satisfy it.

``sdist``: the same, but the sdist is installed with Rust on ``PATH``: pip builds it (maturin, fetched
into the downloads beforehand, like Django) as it would on a platform without a wheel.

A redis-server for RedisNearCache is started once by ``benchmarks/redis_server.sh`` (loopback, a free port,
no persistence; installed with apt-get if missing) and stopped by its pid when the run ends, however it ends.
The smoke reaches it over TLS (``rediss://``, certificates made for the run by ``tests/tls_certs.py``), so
that the TLS stack compiled into the wheel (rustls on ring) does a real handshake.

Then ``smoke.py`` runs with the virtualenv's Python, isolated (``-I``), from a scratch directory outside
the source tree, with the same ``PATH``. Standard library only: it runs on the interpreter that CI has.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REDIS_SCRIPT = ROOT / "benchmarks" / "redis_server.sh"  # starts RedisNearCache's server for the smoke
sys.path.insert(0, str(ROOT))
from tests import tls_certs  # noqa: E402

MANYLINUX = "manylinux_2_17_x86_64"  # the tag `make wheels` builds for (see README, "Installing")


def cargo_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def pep440(version: str) -> str:
    """Cargo's SemVer in PEP 440 form (``1.2.0-alpha.3`` is ``1.2.0a3``): what the smoke test expects both
    ``django_rustcache.__version__`` and the wheel's metadata (written by maturin) to say."""
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(?:-(alpha|beta|rc)\.?(\d+))?(?:\+([0-9A-Za-z.-]+))?", version)
    if match is None:
        raise SystemExit(f"install test: Cargo version {version!r} has no PEP 440 form")
    release, pre, number, local = match.groups()
    pre = {"alpha": "a", "beta": "b", "rc": "rc"}[pre] + number if pre else ""
    return release + pre + (f"+{local.replace('-', '.')}" if local else "")


def without_rust(path: str) -> str:
    """`path` less every directory that holds a cargo or rustc executable."""
    kept = []
    for entry in path.split(os.pathsep):
        if entry and not any(os.access(os.path.join(entry, tool), os.X_OK) for tool in ("cargo", "rustc")):
            kept.append(entry)
    return os.pathsep.join(kept)


def interpreter_tag(python: str) -> str:
    code = "import sys; print(sys.version_info[0], sys.version_info[1])"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    major, minor = out.stdout.split()
    return f"cp{major}{minor}"


def the_wheel(dist: Path, tag: str) -> tuple[Path, str]:
    """The one wheel in `dist` for this interpreter, and the tag it must carry."""
    own = sorted(dist.glob(f"django_rustcache-*-{tag}-{tag}-*{MANYLINUX}*.whl"))
    abi3 = sorted(dist.glob(f"django_rustcache-*-cp311-abi3-*{MANYLINUX}*.whl"))
    found = own or abi3
    if len(found) != 1:
        raise SystemExit(f"install test: expected one {tag} (or cp311-abi3) {MANYLINUX} wheel in {dist}, found {found}")
    return found[0], f"{tag}-{tag}-{MANYLINUX}" if own else f"cp311-abi3-{MANYLINUX}"


def the_sdist(dist: Path) -> Path:
    found = sorted(dist.glob("django_rustcache-*.tar.gz"))
    if len(found) != 1:
        raise SystemExit(f"install test: expected one sdist in {dist}, found {found}")
    return found[0]


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def install_and_smoke(mode: str, python: str, django: str, dist: Path, downloads: Path, version: str) -> None:
    tag = interpreter_tag(python)
    started = time.monotonic()
    print(f"\n== install test: {mode} on {tag} ({python}) with {django}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"rustcache-install-{tag}-") as tmp:
        scratch = Path(tmp)
        venv = scratch / "venv"
        run([python, "-m", "venv", str(venv)])
        vpython = str(venv / "bin" / "python")
        pip = [vpython, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        run([*pip, "install", "-q", "-U", "pip"])
        # Fetched with the virtualenv's own pip, so the files fit its interpreter.
        fetch = downloads / tag
        wanted = [django] + (["maturin>=1.9.4,<2"] if mode == "sdist" else [])
        run([*pip, "download", "-q", "--only-binary", ":all:", "-d", str(fetch), *wanted])

        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")}
        env["PATH"] = os.pathsep.join(
            [str(venv / "bin"), env["PATH"] if mode == "sdist" else without_rust(env["PATH"])]
        )
        env["RUSTCACHE_SMOKE_DIR"] = str(scratch)
        offline = [*pip, "install", "-q", "--no-index", "--find-links", str(fetch)]
        smoke = [vpython, "-I", str(scratch / "smoke.py"), "--source-tree", str(ROOT), "--expect-version", version]
        if mode == "wheels":
            wheel, wheel_tag = the_wheel(dist, tag)
            run([*offline, "--only-binary", ":all:", str(wheel), django], env=env, cwd=scratch)
            smoke += ["--expect-tag", wheel_tag]
        else:
            # pip builds the sdist in an isolated environment whose maturin comes from the downloads.
            run([*offline, str(the_sdist(dist)), django], env=env, cwd=scratch)
            smoke += ["--rust-on-path"]
        for name in ("smoke.py", "smoke_settings.py"):
            shutil.copy(HERE / name, scratch / name)
        run(smoke, env=env, cwd=scratch)
    print(f"== install test: {mode} on {tag} passed in {time.monotonic() - started:.0f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("wheels", "sdist"))
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where `make wheels` put the artifacts")
    parser.add_argument("--downloads", type=Path, default=ROOT / ".cache" / "install", help="pip download dir")
    parser.add_argument(
        "--python",
        action="append",
        nargs=2,
        metavar=("INTERPRETER", "DJANGO"),
        required=True,
        help="an interpreter and the Django requirement to install beside the package (repeatable)",
    )
    args = parser.parse_args()
    version = pep440(cargo_version())
    passed = 0
    name = f"install-smoke-{os.getpid()}"
    certs = Path(tempfile.mkdtemp(prefix="install-smoke-tls-"))
    try:
        subprocess.run([str(REDIS_SCRIPT), "install"], check=True)  # redis-server and openssl
        tls_port, tls_args = tls_certs.server_args(certs)
        subprocess.run([str(REDIS_SCRIPT), "start", name, *tls_args], check=True, capture_output=True)
        os.environ["RUSTCACHE_SMOKE_REDIS_URL"] = f"rediss://127.0.0.1:{tls_port}/0"
        os.environ["RUSTCACHE_SMOKE_REDIS_CA"] = str(certs / "ca.crt")
        for python, django in args.python:
            install_and_smoke(args.mode, python, django, args.dist.resolve(), args.downloads.resolve(), version)
            passed += 1
    finally:
        subprocess.run([str(REDIS_SCRIPT), "stop", name], check=False)
        shutil.rmtree(certs, ignore_errors=True)
    print(f"install {args.mode}: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
