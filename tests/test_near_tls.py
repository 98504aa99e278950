"""RedisNearCache over TLS (``rediss://``) against a real redis-server with a TLS port, with
certificates made by ``openssl`` for this run: the server's certificate is checked as redis-py checks
it (``ssl_cert_reqs``, ``ssl_check_hostname``, ``ssl_ca_certs``/``ssl_ca_data``), mutual TLS with
``ssl_certfile``/``ssl_keyfile``, and coherence (tracking and its listener) over TLS, interoperating
with Django's ``RedisCache`` on the same TLS port."""

import shutil
import subprocess
import uuid

import pytest
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from django_rustcache import RedisNearCache

from . import tls_certs
from .test_near import DELAY, SCRIPT, running_server, until, warm


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A redis-server with a plain port (for the script's checks and for injecting faults) and a TLS
    port whose certificate names 127.0.0.1 only, signed by `ca`; `other` is an authority that signed
    nothing of the server's; `client` is a client certificate signed by `ca`."""
    if shutil.which("openssl") is None:  # the project script installs it with redis-server
        subprocess.run([str(SCRIPT), "install"], capture_output=True, check=False)
    if shutil.which("openssl") is None:
        pytest.skip("openssl (which makes the test certificates) is not installed and cannot be installed here")
    d = tmp_path_factory.mktemp("tls")
    tls_port, args = tls_certs.server_args(d)
    tls_certs.authority(d, "other")
    with running_server(f"pytest-tls-{uuid.uuid4().hex[:8]}", *args) as port:
        yield {"port": port, "tls_port": tls_port, "dir": d}


def near(tls, host="127.0.0.1", **options):
    options.setdefault("LOCAL", {}).setdefault("HEARTBEAT", 0.2)
    location = f"rediss://{host}:{tls['tls_port']}/0"
    return RedisNearCache(location, {"KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}", "OPTIONS": options})


def trusting(tls, **options):
    return near(tls, ssl_ca_certs=str(tls["dir"] / "ca.crt"), **options)


def test_rediss_with_the_servers_authority_is_coherent_with_django_redis_cache_over_tls(tls):
    c = trusting(tls)
    c.set("k", "v1")
    assert c.get("k") == "v1"
    assert c.add("n", 1)
    assert c.incr("n") == 2
    assert c.get("n") == 2
    warm(c, "k")
    assert c.stats()["tracking"]
    # Django's own RedisCache (redis-py's TLS) writes through the same TLS port: the invalidation
    # reaches our listener, which is on TLS too.
    theirs = RedisCache(
        f"rediss://127.0.0.1:{tls['tls_port']}/0",
        {"KEY_PREFIX": c.key_prefix, "OPTIONS": {"ssl_ca_certs": str(tls["dir"] / "ca.crt")}},
    )
    assert theirs.get("k") == "v1"
    theirs.set("k", "v2")
    until("the invalidation over TLS", lambda: c.get("k") == "v2", timeout=DELAY)
    assert theirs.get("n") == 2


def test_the_listener_reconnects_over_tls_after_its_connection_is_killed(tls):
    c = trusting(tls)
    c.set("k", "v")
    warm(c, "k")
    flushes = c.stats()["flushes"]
    Redis(port=tls["port"]).client_kill_filter(_id=c._native.listener_client_id())
    until("the flush", lambda: c.stats()["flushes"] > flushes)
    until("tracking again", lambda: c.stats()["reconnects"] >= 1 and c.stats()["tracking"])
    warm(c, "k")
    Redis(port=tls["port"]).set(f"{c.key_prefix}:1:k", b"2")
    until("the invalidation", lambda: c.get("k") == 2, timeout=DELAY)


def test_the_server_certificate_is_verified_unless_told_not_to(tls):
    # Signed by an authority this client does not trust: refused, whether it trusts another one or
    # the system's.
    for untrusting in (near(tls, ssl_ca_certs=str(tls["dir"] / "other.crt")), near(tls)):
        with pytest.raises(RedisConnectionError):
            untrusting.set("k", 1)
    # ssl_cert_reqs none (redis-py's spelling; also None and ssl.CERT_NONE): encrypted, not verified.
    for reqs in ("none", None):
        unverified = near(tls, ssl_cert_reqs=reqs, ssl_ca_certs=str(tls["dir"] / "other.crt"))
        unverified.set("k", 1)
        assert unverified.get("k") == 1
    # The authority inline (ssl_ca_data), as PEM text.
    inline = near(tls, ssl_ca_data=(tls["dir"] / "ca.crt").read_text())
    inline.set("k", 2)
    assert inline.get("k") == 2


def test_the_host_name_is_checked_unless_ssl_check_hostname_is_false(tls):
    # The certificate names 127.0.0.1, not "localhost".
    with pytest.raises(RedisConnectionError):
        trusting(tls, host="localhost").set("k", 1)
    c = trusting(tls, host="localhost", ssl_check_hostname=False)
    c.set("k", 3)
    assert c.get("k") == 3


def test_mutual_tls_with_a_client_certificate(tls):
    raw = Redis(port=tls["port"])
    raw.config_set("tls-auth-clients", "yes")
    try:
        with pytest.raises(RedisConnectionError):
            trusting(tls).set("k", 1)
        d = tls["dir"]
        c = trusting(tls, ssl_certfile=str(d / "client.crt"), ssl_keyfile=str(d / "client.key"))
        c.set("k", 4)
        assert c.get("k") == 4
        warm(c, "k")
        assert c.stats()["tracking"]
    finally:
        raw.config_set("tls-auth-clients", "optional")


def test_tls_options_are_validated(tls):
    d = tls["dir"]
    with pytest.raises(ImproperlyConfigured, match="rediss://"):
        RedisNearCache(f"redis://127.0.0.1:{tls['port']}/0", {"OPTIONS": {"ssl_ca_certs": str(d / "ca.crt")}})
    with pytest.raises(ImproperlyConfigured, match="ssl_cert_reqs"):
        near(tls, ssl_cert_reqs="sometimes")
    with pytest.raises(ImproperlyConfigured, match="ssl_check_hostname"):
        near(tls, ssl_check_hostname="no")
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        near(tls, ssl_ca_certs=str(d / "missing.crt"))
    with pytest.raises(ImproperlyConfigured, match="TLS"):
        near(tls, ssl_ca_data="not a certificate")
    with pytest.raises(ImproperlyConfigured, match="ssl_certfile"):
        near(tls, ssl_keyfile=str(d / "client.key"))
