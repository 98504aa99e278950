"""Check what ``make wheels`` put in ``dist/`` before anything is installed from it.

    .venv-wheels/bin/python tests/install/check_dist.py dist cp311 cp312 cp313

Run with the wheel-building virtualenv's Python (it has auditwheel and trove-classifiers). Fails (exit 1)
unless ``dist/`` holds exactly one wheel per interpreter tag given (``cpXY-cpXY``, or ``cp311-abi3`` if
``abi3`` is given) and one sdist, and:

- each wheel's file name carries ``manylinux_2_17_x86_64`` and ``auditwheel show`` finds the wheel
  consistent with exactly that tag (its glibc symbols are no newer than 2.17, and it links nothing outside
  the manylinux policy);
- each artifact ships ``py.typed`` and the ``LICENSE`` file, and its metadata has the PEP 440 form of the
  version in ``Cargo.toml``, ``License-Expression: MIT`` and only classifiers that exist.

``twine check --strict`` (run beside this by the Makefile) checks that the metadata renders on a registry page.
"""

import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import trove_classifiers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import MANYLINUX, ROOT, pep440

FAILURES: list[str] = []


def check(condition: bool, what: str) -> None:
    print(f"  {'ok' if condition else 'FAILED'}  {what}")
    if not condition:
        FAILURES.append(what)


def check_metadata(name: str, text: str, version: str) -> None:
    metadata = HeaderParser().parsestr(text)
    check(metadata["Version"] == version, f"{name}: Version {metadata['Version']} (Cargo.toml: {version})")
    check(metadata["License-Expression"] == "MIT", f"{name}: License-Expression {metadata['License-Expression']}")
    unknown = [c for c in metadata.get_all("Classifier") or () if c not in trove_classifiers.classifiers]
    check(not unknown, f"{name}: every classifier exists (unknown: {unknown})")


def check_wheel(wheel: Path, version: str) -> None:
    check(MANYLINUX in wheel.name, f"{wheel.name}: file name carries {MANYLINUX}")
    shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True)
    report = " ".join(shown.stdout.split())
    match = re.search(r'is consistent with the following platform tag: "([^"]+)"', report)
    found = match.group(1) if match else f"no tag (exit {shown.returncode}: {report[:300]})"
    check(found == MANYLINUX, f"{wheel.name}: auditwheel show agrees: {found}")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        check("django_rustcache/py.typed" in names, f"{wheel.name}: ships py.typed")
        check(any(n.endswith(".dist-info/licenses/LICENSE") for n in names), f"{wheel.name}: ships LICENSE")
        check(any(re.fullmatch(r"django_rustcache/_core\..*so", n) for n in names), f"{wheel.name}: ships _core")
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        check_metadata(wheel.name, z.read(metadata).decode(), version)


def check_sdist(sdist: Path, version: str) -> None:
    with tarfile.open(sdist) as t:
        top = sdist.name.removesuffix(".tar.gz")
        names = set(t.getnames())
        for wanted in ("LICENSE", "CHANGELOG.md", "Cargo.lock", "python/django_rustcache/py.typed"):
            check(f"{top}/{wanted}" in names, f"{sdist.name}: ships {wanted}")
        member = t.extractfile(f"{top}/PKG-INFO")
        check_metadata(sdist.name, member.read().decode() if member else "", version)


def main() -> int:
    dist, tags = Path(sys.argv[1]), sys.argv[2:]
    with open(ROOT / "Cargo.toml", "rb") as f:
        version = pep440(tomllib.load(f)["package"]["version"])
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    wanted = ["cp311-abi3" if tag == "abi3" else f"{tag}-{tag}" for tag in tags]
    got = sorted("-".join(w.name.split("-")[2:4]) for w in wheels)
    check(got == sorted(wanted), f"{dist}: one wheel each for {wanted} (found {got})")
    check(len(sdists) == 1, f"{dist}: one sdist (found {[s.name for s in sdists]})")
    for wheel in wheels:
        check_wheel(wheel, version)
    for sdist in sdists:
        check_sdist(sdist, version)
    if FAILURES:
        print(f"check_dist: {len(FAILURES)} failed: {FAILURES}", file=sys.stderr)
        return 1
    print(f"check_dist: {dist} holds {len(wheels)} wheels and {len(sdists)} sdist, all as they must be")
    return 0


if __name__ == "__main__":
    sys.exit(main())
