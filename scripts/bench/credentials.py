"""The credentials the load sends: pools of signed JWTs (minted by loadgen,
kept between runs because RS256 signing is slow), ward-format API keys and
random session ids, the Redis wire protocol they are written to Redis in,
and the token files loadgen reads."""

from __future__ import annotations

import glob
import os
import re
import time
import zlib
from typing import TYPE_CHECKING

from bench.procs import log, run_tool
from bench.settings import LOADGEN_BIN

if TYPE_CHECKING:
    from bench.bed import Bed


def token_pool(bed: "Bed", alg: str, count: int, exp_secs: int, prefix: str,
               reusable: bool = True) -> str:
    """A file of `count` valid tokens. Pools of long-lived tokens are kept
    in bench-results/tmp and reused while they have more than a day left:
    RS256 signing is the slow part of a first run."""
    kid = f"bench-{alg.lower()}"
    path = os.path.join(bed.cache if reusable else bed.tmp, f"pool-{alg}-{prefix}{count}.txt")
    meta = path + ".exp"
    if reusable:
        # Any kept pool at least this large will do (extra tokens go unused).
        for old in glob.glob(os.path.join(bed.cache, f"pool-{alg}-{prefix}*.txt")):
            m = re.search(r"-(\d+)\.txt$", old)
            if not m or int(m.group(1)) < count or not os.path.exists(old + ".exp"):
                continue
            with open(old + ".exp") as f:
                exp = float(f.read().strip() or 0)
            if exp - time.time() > 86400:
                return old
    t = time.monotonic()
    run_tool([LOADGEN_BIN, "mint", "--alg", alg, "--kid", kid, "--count", str(count),
              "--exp-secs", str(exp_secs), "--prefix", prefix, "--out", path],
             None, 900, f"mint {alg}")
    with open(meta, "w") as f:
        f.write(str(time.time() + exp_secs))
    log(f"  minted {count} {alg} tokens in {time.monotonic() - t:.1f}s")
    return path


def one_token(bed: "Bed", alg: str = "RS256") -> str:
    return token_pool(bed, alg, 1, 7 * 86400, "hot-")


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_TABLE = bytes((BASE62 * 5)[:256], "ascii")


def random_base62(n: int) -> str:
    """n base62 characters (bytes mod 62: slightly biased, fine for ids)."""
    return os.urandom(n).translate(_B62_TABLE).decode()


def new_api_key() -> str:
    """A fresh key in ward's format: `ward_`, 32 random base62 characters,
    then the CRC-32 of those as 6 base62 digits."""
    body = "ward_" + random_base62(32)
    crc, digits = zlib.crc32(body.encode()), []
    for _ in range(6):
        crc, d = divmod(crc, 62)
        digits.append(BASE62[d])
    return body + "".join(reversed(digits))


def resp(*args: str) -> bytes:
    """One Redis command in the wire protocol (for redis-cli --pipe)."""
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def lines_file(bed: "Bed", name: str, lines: list[str]) -> str:
    path = os.path.join(bed.tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
