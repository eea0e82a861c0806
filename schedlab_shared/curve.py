"""ZeroMQ CURVE keys of the remote collector: a key pair per host, an allow-list per store.

Layout under the config directory (``~/.config/schedlab``, or ``$SCHEDLAB_CONFIG_DIR``)::

    curve/<name>.key           the public key (zmq.auth certificate format: shareable)
    curve/<name>.key_secret    the secret key (mode 0600, never leaves the host)
    allowed/<host>.key         on a store: the public keys it accepts, named by host

A sender's ``<name>`` is its host name; a store's is ``store``. To let a host in, copy its
``curve/<host>.key`` into the store's ``allowed/``; to let a host reach a store, give it the
store's ``curve/store.key``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import zmq
import zmq.auth

__all__ = (
    "CONFIG_ENV",
    "CurveKeyError",
    "KeyPair",
    "allowed_hosts",
    "allowed_dir",
    "config_dir",
    "host_name",
    "key_pair",
    "public_key",
    "secure_client",
    "secure_server",
)

CONFIG_ENV = "SCHEDLAB_CONFIG_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CurveKeyError(ValueError):
    """A missing or unreadable key file: which, and what to do."""


class KeyPair:
    def __init__(self, public: bytes, secret: bytes, path: Path) -> None:
        self.public, self.secret, self.path = public, secret, path


def config_dir() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "schedlab"


def allowed_dir() -> Path:
    return config_dir() / "allowed"


def host_name() -> str:
    """This host's name as a key name (characters outside [A-Za-z0-9._-] become '-')."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64] or "host"


def key_pair(name: str | None = None, create: bool = True) -> KeyPair:
    """This host's key pair ``name`` (default: the host name), made on first use."""
    name = name or host_name()
    if not _NAME.match(name):
        raise CurveKeyError(f"key name {name!r}: use letters, digits, '.', '_' or '-'")
    d = config_dir() / "curve"
    secret = d / f"{name}.key_secret"
    if not secret.exists():
        if not create:
            raise CurveKeyError(f"{secret}: no such key pair")
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        zmq.auth.create_certificates(str(d), name)
        os.chmod(secret, 0o600)
    try:
        public, sec = zmq.auth.load_certificate(str(secret))
    except (OSError, ValueError) as e:
        raise CurveKeyError(f"{secret}: not a CURVE key pair ({e})") from None
    if sec is None:
        raise CurveKeyError(f"{secret}: holds no secret key")
    return KeyPair(public, sec, d / f"{name}.key")


def public_key(path: Path) -> bytes:
    """The public key in a certificate file (``<name>.key``)."""
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as e:
        raise CurveKeyError(f"{path}: not a CURVE public key file ({e})") from None
    return public


def allowed_hosts(directory: Path) -> dict[bytes, str]:
    """Public key (z85) -> host name, for every ``<host>.key`` in the allow-list."""
    out: dict[bytes, str] = {}
    for p in sorted(Path(directory).glob("*.key")):
        out[public_key(p)] = p.stem
    return out


def secure_server(sock: zmq.Socket, keys: KeyPair) -> None:
    """Make ``sock`` a CURVE server (before bind); the authenticator decides who gets in."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def secure_client(sock: zmq.Socket, keys: KeyPair, server_public: bytes) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is given (before connect)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = server_public
