"""Django's own cache test suite (``tests/cache/tests.py`` of the installed Django version) on
RustCache and on SharedCache: see ``tests/django_suite/run.py`` and ``tests/django_suite/EXCLUSIONS.md``."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.django_suite import run

SUITE = Path(run.__file__).resolve().parent
TIMEOUT = 30 * 60  # a first run downloads the sdist; the suite itself sleeps ~15 s


def test_exclusions_are_documented():
    documented = (SUITE / "EXCLUSIONS.md").read_text(encoding="utf-8")
    for name in run.NOT_RUN:
        assert f"`{name}`" in documented, name
    for cls, test in run.SKIPPED:
        assert f"`{cls}.{test}`" in documented, (cls, test)


@pytest.mark.parametrize("backend", ["rust", "shared"])
def test_django_cache_suite_passes(backend):
    done = subprocess.run(
        [sys.executable, str(SUITE / "run.py"), "--backend", backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    tail = "\n".join(done.stdout.splitlines()[-120:])
    assert done.returncode == 0, f"run.py exited {done.returncode}:\n{tail}"
    # One unittest verdict per runtests call: part 1 (BaseCacheTests and the ports) with nothing
    # skipped, part 2 (the rest of cache/tests.py) with only the listed skips.
    verdicts = re.findall(r"^(OK.*|FAILED.*)$", done.stdout, flags=re.MULTILINE)
    assert verdicts == ["OK", f"OK (skipped={len(run.SKIPPED)})"], tail
    ran = [int(n) for n in re.findall(r"^Ran (\d+) tests? in ", done.stdout, flags=re.MULTILINE)]
    assert len(ran) == 2, tail
    assert ran[0] > 60, tail  # BaseCacheTests alone has more than 55 tests
    assert "RustCacheTests.test_cull)" in done.stdout, tail


def test_django_redis_cache_suite_passes_on_redis_near_cache_as_on_redis_cache():
    """RedisCacheTests (BaseCacheTests on Redis, cull tests excepted as Django excepts them) against
    RedisNearCache, then against Django's RedisCache, on one server started by run.py."""
    done = subprocess.run(
        [sys.executable, str(SUITE / "run.py"), "--near"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    tail = "\n".join(done.stdout.splitlines()[-120:])
    assert done.returncode == 0, f"run.py --near exited {done.returncode}:\n{tail}"
    verdicts = re.findall(r"^(OK.*|FAILED.*)$", done.stdout, flags=re.MULTILINE)
    assert len(verdicts) == 2, tail
    assert verdicts[0] == verdicts[1], tail  # the same verdict on both backends
    assert verdicts[0].startswith("OK"), tail
    ran = [int(n) for n in re.findall(r"^Ran (\d+) tests? in ", done.stdout, flags=re.MULTILINE)]
    assert ran[0] == ran[1] > 100, tail
