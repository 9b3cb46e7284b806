#!/usr/bin/env python3
"""ward's resident memory (RSS) around a flood of silent connections.

    python3 scripts/conn_rss.py [--ward target/release/ward] [--connections 5000]
                                [--handshake-timeout 2s] [--rounds 2]

Starts ward with an embedded store and one HMAC key, opens N TCP
connections to its gRPC port that never send a byte (the issue-19
scenario), and prints VmRSS from /proc: at rest, while the connections are
held, once ward has closed them all (listen.handshake_timeout), and a few
seconds later; then floods again (`--rounds`) to show whether the freed
memory is reused rather than grown. Extra environment for ward (allocator
tunables such as MALLOC_ARENA_MAX=2) is passed through: run it once per
setting to compare. Linux only. See docs/configuration.md (Memory after a
flood) for the numbers measured and what they mean.
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def metric(admin, name, listener):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{listener="{listener}"}}'):
            return float(line.split()[-1])
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ward", default="target/debug/ward")
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--handshake-timeout", default="2s")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after the close")
    args = ap.parse_args()

    # This process and ward each hold one descriptor per connection.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 512
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    grpc, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    tmp = tempfile.mkdtemp(prefix="ward-rss-")
    config = os.path.join(tmp, "ward.yaml")
    with open(config, "w") as f:
        f.write(
            f'log: {{format: text, level: warn}}\n'
            f'listen: {{grpc: "{grpc}", admin: "{admin}", '
            f'handshake_timeout: {args.handshake_timeout}, max_connections: {args.connections + 100}}}\n'
            f'jwt:\n  keys: [{{kid: h, alg: HS256, secret: {{value: "{SECRET}"}}}}]\n'
        )
    log = open(os.path.join(tmp, "ward.log"), "w")
    ward = subprocess.Popen([args.ward, "serve", "--config", config], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{admin}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit(f"ward did not become ready; see {tmp}/ward.log")
        env = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")))
        print(f"ward {args.ward}, {args.connections} silent connections, "
              f"handshake_timeout {args.handshake_timeout}{', ' + env if env else ''}")
        rest = rss_kib(ward.pid)
        print(f"  at rest:                      {rest / 1024:7.1f} MiB")
        host, port = grpc.rsplit(":", 1)
        for round_ in range(1, args.rounds + 1):
            conns = [socket.create_connection((host, int(port))) for _ in range(args.connections)]
            deadline = time.time() + 10
            while metric(admin, "ward_connections_open", "grpc") < args.connections and time.time() < deadline:
                time.sleep(0.1)
            held = rss_kib(ward.pid)
            print(f"  round {round_}: {args.connections} held:      {held / 1024:7.1f} MiB "
                  f"({(held - rest) * 1024 / args.connections / 1000:.1f} KB per connection above rest)")
            deadline = time.time() + 60
            while metric(admin, "ward_connections_open", "grpc") > 0 and time.time() < deadline:
                time.sleep(0.2)
            print(f"  round {round_}: all closed by ward: {rss_kib(ward.pid) / 1024:7.1f} MiB "
                  f"(timed out so far: {metric(admin, 'ward_connections_handshake_timeouts_total', 'grpc'):.0f})")
            time.sleep(args.settle)
            print(f"  round {round_}: {args.settle:.0f}s later:         {rss_kib(ward.pid) / 1024:7.1f} MiB")
            for c in conns:
                c.close()
    finally:
        ward.terminate()
        ward.wait(timeout=15)


if __name__ == "__main__":
    main()
