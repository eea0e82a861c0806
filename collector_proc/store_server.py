"""``python -m collector_proc.store_server``: the remote run store (``schedlab collect``).

A ROUTER socket with CURVE on; ZeroMQ's authenticator (zmq.auth) lets in only the public
keys in the allow-list directory, read again at each handshake (a host added or removed
counts from its next connection). The sender's host is the allow-list name of the key it
authenticated with.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from schedlab_shared import curve
from schedlab_shared.bus import store as proto
from schedlab_shared.bus.codec import BusError, Status, decode_request, encode_reply
from schedlab_shared.exitcodes import RunExit

from .store import RunStore, StoreRefused

__all__ = ("StoreServer", "main")

log = logging.getLogger("collector_proc.store")


class _AllowList:
    """The authenticator's credentials provider: is this key on the allow-list now?"""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def callback(self, _domain: str, key: bytes) -> bool:
        try:
            ok = key in curve.allowed_hosts(self.directory)
        except curve.CurveKeyError as e:
            log.error("allow-list unreadable: %s", e)
            return False
        if not ok:
            log.warning(
                "refused a CURVE key not on the allow-list: %s", key.decode(errors="replace")
            )
        return ok


class StoreServer:
    def __init__(self, listen: str, root: Path, allow: Path, keys: curve.KeyPair) -> None:
        self.store = RunStore(root)
        self.allow = allow
        self.ctx = zmq.Context()
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve_callback("*", credentials_provider=_AllowList(allow))
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        curve.secure_server(self.sock, keys)
        self.sock.bind(listen)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.appended = 0

    def _host(self, user_id: str) -> str:
        host = curve.allowed_hosts(self.allow).get(user_id.encode())
        if host is None:  # removed from the list since its handshake
            raise BusError(Status.NOT_ALLOWED, "this key is no longer on the store's allow-list")
        return host

    def _serve(self, user_id: str, data: bytes) -> bytes:
        req_id = -1
        try:
            req_id, msg = decode_request(data)
            host = self._host(user_id)
            if isinstance(msg, proto.StoreAppend):
                ok, seq, off = self.store.append(
                    host, msg.run_id, msg.file, msg.seq, msg.offset, msg.data
                )
                self.appended += ok
                return encode_reply(req_id, body=proto.StoreAppendReply(ok, seq, off))
            if isinstance(msg, proto.StoreResume):
                names = [n for n in msg.files if isinstance(n, str)][:10_000]
                files = {}
                for n in names:
                    s, o = self.store.position(host, msg.run_id, n)
                    files[n] = {"next_seq": s, "offset": o}
                return encode_reply(req_id, body=proto.StoreResumeReply(files))
            raise BusError(Status.UNKNOWN_TYPE, f"{msg.TYPE} is not served by the store")
        except StoreRefused as e:
            return encode_reply(req_id, Status.NOT_ALLOWED, str(e))
        except BusError as e:
            return encode_reply(req_id, e.status, e.reason)
        except OSError as e:
            log.error("store write failed: %s", e)
            return encode_reply(req_id, Status.INTERNAL, f"store: {e.strerror or e}")

    def serve_ready(self) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) != 2:
                continue
            user_id = str(frames[1].get("User-Id") or "")
            reply = self._serve(user_id, frames[1].bytes)
            self.sock.send_multipart([frames[0].bytes, reply])

    def close(self) -> None:
        self.sock.close(0)
        self.auth.stop()
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="collector_proc.store_server", description=__doc__)
    ap.add_argument("--listen", required=True, help="endpoint to bind, e.g. tcp://0.0.0.0:5601")
    ap.add_argument("--store", required=True, type=Path, help="directory the runs go into")
    ap.add_argument("--allow", type=Path, default=None, help="allow-list directory (<host>.key)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="schedlab collect %(levelname)s %(message)s")
    allow = args.allow or curve.allowed_dir()
    try:
        keys = curve.key_pair("store")
        allow.mkdir(parents=True, exist_ok=True)
        server = StoreServer(args.listen, args.store, allow, keys)
    except (curve.CurveKeyError, OSError, zmq.ZMQError) as e:
        print(f"schedlab: collect: {e}", file=sys.stderr)
        return RunExit.ERROR
    stop_r, stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    got: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        got.append(signum)
        os.write(stop_w, b"x")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hosts = sorted(set(curve.allowed_hosts(allow).values()))
    print(
        f"schedlab collect: storing into {args.store} on {server.endpoint}; store key "
        f"{keys.path}; allowed hosts ({allow}): {', '.join(hosts) or 'none yet'}",
        flush=True,
    )
    poller = zmq.Poller()
    poller.register(server.sock, zmq.POLLIN)
    poller.register(stop_r, zmq.POLLIN)
    try:
        while not got:
            if server.sock in dict(poller.poll(1000)):
                server.serve_ready()
    finally:
        server.close()
        os.close(stop_r)
        os.close(stop_w)
    return RunExit.INTERRUPTED if got and got[0] == signal.SIGINT else RunExit.PASSED


if __name__ == "__main__":
    sys.exit(main())
