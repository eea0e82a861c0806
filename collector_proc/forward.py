"""Forward a run directory's logs to a remote store (``schedlab collect``), resumably.

Each file of the run directory is sent as numbered chunks from where the store says it
stands (``store.resume``), so a reconnect, a sender restart or a store restart loses and
repeats nothing. Files are append-only logs; one rewritten in place (the collector's own
checkpoint) is not forwarded.

``python -m collector_proc.forward --run-dir D --store tcp://HOST:PORT --store-key store.key``
sends what is there and exits (0: all of it is stored); ``--follow`` keeps sending until
SIGTERM, then flushes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from schedlab_shared import curve, run_layout
from schedlab_shared.bus import store as proto
from schedlab_shared.bus.client import BusClient
from schedlab_shared.bus.codec import BusError, Status
from schedlab_shared.exitcodes import RunExit

__all__ = ("ForwardThread", "Forwarder", "main", "start_forwarding")

log = logging.getLogger("collector_proc.forward")
SEND_CHUNK = 256 << 10
_SKIP = frozenset({run_layout.COLLECTOR_STATE})  # rewritten in place, not a log
_RETRY_S = 1.0


class _CurveClient(BusClient):
    """The bus request client, CURVE-secured, with a monitor that sees a refused handshake."""

    def __init__(
        self, ctx: zmq.Context, endpoint: str, keys: curve.KeyPair, server: bytes, timeout_s: float
    ) -> None:
        self._keys, self._server = keys, server
        super().__init__(ctx, endpoint, timeout_s)
        self.monitor = self._sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        curve.secure_client(sock, self._keys, self._server)
        sock.connect(self.endpoint)
        return sock

    def refused(self) -> bool | None:
        """True if the last handshake outcome seen was a refusal (None: none seen)."""
        last = None
        while self.monitor.poll(0):
            ev = recv_monitor_message(self.monitor)["event"]
            last = ev == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        return last

    def close(self) -> None:
        self._sock.disable_monitor()
        self.monitor.close(0)
        super().close()


class Forwarder:
    """Sends ``run_dir``'s files to the store as ``<host>/<run_id>/<file>`` there."""

    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        store: str,
        store_public: bytes,
        keys: curve.KeyPair,
        timeout_s: float = 2.0,
    ) -> None:
        if not proto.valid_name(run_id):
            raise ValueError(f"run id {run_id!r} is not a plain name")
        self.run_dir, self.run_id = Path(run_dir), run_id
        self.ctx = zmq.Context()
        self.client = _CurveClient(self.ctx, store, keys, store_public, timeout_s)
        self._pos: dict[str, tuple[int, int]] | None = None  # None: ask the store first
        self._retry_at = 0.0
        self.refused = ""  # why the store refused us, once it did
        self.sent = 0

    def _files(self) -> dict[str, int]:
        out = {}
        for p in self.run_dir.iterdir():
            if p.name in _SKIP or p.name.endswith(".tmp") or not proto.valid_name(p.name):
                continue
            try:
                st = p.lstat()
            except OSError:
                continue
            if p.is_file() and not p.is_symlink():
                out[p.name] = st.st_size
        return out

    def _resume(self, names: list[str]) -> None:
        reply = self.client.request(proto.StoreResume(self.run_id, names))
        pos = self._pos or {}
        for n in names:
            f = reply.files.get(n) or {}
            pos[n] = (int(f.get("next_seq", 0)), int(f.get("offset", 0)))
        self._pos = pos

    def _send(self, name: str, size: int, budget: int) -> int:
        sent = 0
        assert self._pos is not None
        while sent < budget:
            seq, off = self._pos[name]
            if off >= size:
                break
            with open(self.run_dir / name, "rb") as f:
                f.seek(off)
                data = f.read(min(SEND_CHUNK, size - off))
            if not data:
                break
            r = self.client.request(proto.StoreAppend(self.run_id, name, seq, off, data))
            self._pos[name] = (r.next_seq, r.offset)
            sent += 1
            self.sent += r.accepted
        return sent

    def pending(self) -> bool:
        """Bytes on disk the store has not acknowledged (True until the store answered)."""
        if self._pos is None:
            return True
        return any(size > self._pos.get(n, (0, 0))[1] for n, size in self._files().items())

    def pump(self, budget: int = 64) -> int:
        """Send up to ``budget`` chunks; returns how many were sent. A store that does not
        answer is retried after a second (from its own position: nothing is assumed)."""
        if self.refused or time.monotonic() < self._retry_at:
            return 0
        try:
            files = self._files()
            new = [n for n in files if self._pos is None or n not in self._pos]
            if new:
                self._resume(new)
            sent = 0
            for name, size in sorted(files.items()):
                sent += self._send(name, size, budget - sent)
            return sent
        except BusError as e:
            if self.client.refused():
                self.refused = "the store refused this host's CURVE key (not on its allow-list)"
                log.error("%s", self.refused)
            elif e.status is Status.NOT_ALLOWED:
                self.refused = f"the store refused: {e.reason}"
                log.error("%s", self.refused)
            else:
                log.warning("store: %s; resuming from its position in %.0f s", e, _RETRY_S)
                self._pos = None
            self._retry_at = time.monotonic() + _RETRY_S
            return 0

    def flush(self, timeout_s: float) -> bool:
        """Send until nothing is pending or ``timeout_s`` passed; True if all is stored."""
        deadline = time.monotonic() + timeout_s
        while self.pending() and not self.refused and time.monotonic() < deadline:
            if not self.pump():
                time.sleep(0.05)
        return not self.pending()

    def close(self) -> None:
        self.client.close()
        self.ctx.term()


class ForwardThread:
    """A forwarder beside the collector's loop: the store being slow or away never holds
    up the collector itself."""

    def __init__(self, fwd: Forwarder, flush_s: float = 10.0) -> None:
        self.fwd, self.flush_s = fwd, flush_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forward", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(0 if self.fwd.pump() else 0.2):
                pass
            if not self.fwd.flush(self.flush_s):
                log.warning("store: %s not all forwarded at exit", self.fwd.run_dir)
        finally:
            self.fwd.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.flush_s + 5)


def start_forwarding(
    run_dir: Path, run_id: str, store: str, store_key: str | None
) -> ForwardThread | None:
    """The collector's forwarder, or None (logged) when the keys are not there: the run
    itself goes on, its directory complete here."""
    try:
        keys, server = keys_for(None, Path(store_key) if store_key else None)
        return ForwardThread(Forwarder(run_dir, run_id, store, server, keys))
    except (curve.CurveKeyError, ValueError, OSError) as e:
        log.error("not forwarding to %s: %s", store, e)
        return None


def keys_for(key_name: str | None, store_key: Path | None) -> tuple[curve.KeyPair, bytes]:
    """This host's key pair and the store's public key (default: ``curve/store.key``)."""
    keys = curve.key_pair(key_name)
    server = curve.public_key(store_key or curve.config_dir() / "curve" / "store.key")
    return keys, server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="collector_proc.forward", description=__doc__)
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--run-id", default=None, help="default: the run directory's name")
    ap.add_argument("--store", required=True, help="the store's endpoint, tcp://HOST:PORT")
    ap.add_argument("--store-key", type=Path, default=None, help="the store's public key file")
    ap.add_argument("--key-name", default=None, help="this host's key pair (default: host name)")
    ap.add_argument("--follow", action="store_true", help="keep sending until SIGTERM")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to finish sending")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="forward %(levelname)s %(message)s")
    try:
        keys, server = keys_for(args.key_name, args.store_key)
        fwd = Forwarder(args.run_dir, args.run_id or args.run_dir.name, args.store, server, keys)
    except (curve.CurveKeyError, ValueError, OSError) as e:
        print(f"schedlab: forward: {e}", file=sys.stderr)
        return RunExit.ERROR
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while args.follow and not stop.is_set():
            if not fwd.pump():
                stop.wait(0.1)
        ok = fwd.flush(args.timeout)
    finally:
        fwd.close()
    if not ok:
        why = fwd.refused or f"the store at {args.store} did not take it all in {args.timeout:g} s"
        print(f"schedlab: forward {args.run_dir}: {why}", file=sys.stderr)
        return RunExit.ERROR
    return RunExit.PASSED


if __name__ == "__main__":
    sys.exit(main())
