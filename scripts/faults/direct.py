"""gRPC Check straight to one ward, bypassing Envoy, with grpcio and the
Envoy API's generated messages (xds-protos, in .venv-faults as the README's
example client): to warm a credential into each ward's cache, to poll
both wards until a revocation is honoured, and to probe a ward every few
ms while Redis is broken. The answer is reduced to an HTTP status (200 for
an allow, the deny's status, 0 for a gRPC failure)."""

from __future__ import annotations

import threading
import time
from typing import Optional

import grpc
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as ea
from envoy.service.auth.v3 import external_auth_pb2_grpc as eg

from envoy.config.core.v3 import address_pb2


class Direct:
    """A channel to one ward's gRPC port."""

    counter = 0

    def __init__(self, port: int):
        self.port = port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = eg.AuthorizationStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def check(self, headers: dict, path: str = "/api/direct", ip: str = "",
              timeout: float = 1.0) -> int:
        """The answer's status. Each check comes from its own client address
        (unless `ip` is given), so that the failures a revocation poll sees
        never spend a per-address budget (429 would read as a deny)."""
        if not ip:
            Direct.counter += 1
            n = Direct.counter
            ip = f"198.18.{100 + (n // 250) % 150}.{n % 250 + 1}"
        h = dict(headers)
        h["x-forwarded-for"] = f"{ip}, 127.0.0.1"
        http = ac.AttributeContext.HttpRequest(method="GET", host="faults.test", path=path,
                                               headers=h, protocol="HTTP/1.1")
        src = address_pb2.Address(socket_address=address_pb2.SocketAddress(
            address="127.0.0.1", port_value=40000))
        req = ea.CheckRequest(attributes=ac.AttributeContext(
            source=ac.AttributeContext.Peer(address=src),
            request=ac.AttributeContext.Request(http=http)))
        try:
            r = self.stub.Check(req, timeout=timeout)
        except grpc.RpcError:
            return 0
        if r.HasField("ok_response"):
            return 200
        return int(r.denied_response.status.code) or 403


def session_headers(sid: str) -> dict:
    return {"cookie": f"session_id={sid}"}


class Prober:
    """Sends a Check with a fresh session every `interval` s to one ward,
    in a thread, recording (sent, answered, status); for recovery times."""

    def __init__(self, ward: Direct, sessions: list[str], interval: float = 0.005):
        self.ward, self.sessions, self.interval = ward, list(sessions), interval
        self.records: list[tuple[float, float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self.stopped.is_set() and self.sessions:
            sid = self.sessions.pop()
            t0 = time.monotonic()
            status = self.ward.check(session_headers(sid), timeout=1.0)
            self.records.append((t0, time.monotonic(), status))
            nxt += self.interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    def stop(self) -> list[tuple[float, float, int]]:
        self.stopped.set()
        self.thread.join(timeout=5)
        return self.records


def first_allow_after(records: list[tuple[float, float, int]], t: float) -> Optional[float]:
    """Seconds from `t` to the first allow answered after it, if any."""
    done = sorted(r[1] for r in records if r[2] == 200 and r[1] >= t)
    return done[0] - t if done else None
