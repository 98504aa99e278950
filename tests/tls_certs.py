"""Certificates for a TLS redis-server, made with the ``openssl`` command for one run (the tests of
``rediss://`` and the install smoke use them). Standard library only."""

import socket
import subprocess
from pathlib import Path


def _openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def authority(d: Path, name: str) -> Path:
    """A self-signed certificate authority: ``name.crt`` and ``name.key`` in ``d``."""
    _openssl(
        d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return d / f"{name}.crt"


def signed(d: Path, name: str, ca: str, extensions: str) -> Path:
    """A certificate ``name.crt`` (key ``name.key``) signed by the authority ``ca``, with ``extensions``
    (an openssl extension file's lines)."""
    _openssl(
        d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )  # fmt: skip
    (d / f"{name}.ext").write_text(extensions)
    _openssl(
        d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
    )  # fmt: skip
    return d / f"{name}.crt"


def server_args(d: Path) -> tuple[int, list[str]]:
    """Make ``ca`` and a server certificate for 127.0.0.1 (only) signed by it, and a client certificate
    ``client`` signed by it too; return a free port and the redis-server options that serve TLS on it
    (client certificates optional)."""
    authority(d, "ca")
    signed(d, "server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    signed(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port, [
        *("--tls-port", str(port)),
        *("--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key")),
        *("--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "optional"),
    ]
