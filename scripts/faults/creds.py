"""The credentials the run sends, and what each must get: the long-lived
ones written to Redis once per deployment (hot sessions and API keys,
revoked and expired ones, revoked token ids), fresh sessions written in
batches just ahead of use, and the ones made per request (new tokens,
unknown ids, expired tokens). Records follow docs/redis-contract.md."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from bench.credentials import new_api_key, random_base62
from faults import resp, tokens

SESSION_USER, APIKEY_USER, TOKEN_USER = "faults-user", "faults-bot", "faults-jwt"
DAY = 86400


def session_cmds(sid: str, user: str = SESSION_USER, expires_at: int = 0,
                 revoked: bool = False) -> list[tuple]:
    exp = expires_at or int(time.time()) + DAY
    fields = ["user_id", user, "expires_at", str(exp)] + (["revoked", "1"] if revoked else [])
    return [("HSET", f"session:{sid}", *fields), ("EXPIRE", f"session:{sid}", str(DAY))]


def apikey_cmds(key: str, revoked: bool = False) -> list[tuple]:
    digest = hashlib.sha256(key.encode()).hexdigest()
    fields = ["key_id", "key_" + random_base62(16), "user_id", APIKEY_USER, "name", "faults"]
    return [("HSET", f"apikey:{digest}", *fields + (["revoked", "1"] if revoked else []))]


def revoke_session_cmds(sid: str) -> list[tuple]:
    return [("HSET", f"session:{sid}", "revoked", "1"),
            ("PUBLISH", "ward:invalidate", f"session:{sid}")]


def new_session_ids(n: int) -> list[str]:
    return [random_base62(32) for _ in range(n)]


@dataclass
class Creds:
    """What the load draws from (picklable: it goes to the load process)."""
    hot_sessions: list[str] = field(default_factory=list)
    apikeys: list[str] = field(default_factory=list)
    revoked_sessions: list[str] = field(default_factory=list)
    expired_sessions: list[str] = field(default_factory=list)
    revoked_apikeys: list[str] = field(default_factory=list)
    revoked_tokens: list[str] = field(default_factory=list)


def seed(writer) -> Creds:
    """Writes the long-lived credentials; returns them."""
    c = Creds(hot_sessions=new_session_ids(50), apikeys=[new_api_key() for _ in range(5)],
              revoked_sessions=new_session_ids(10), expired_sessions=new_session_ids(10),
              revoked_apikeys=[new_api_key() for _ in range(5)])
    cmds: list[tuple] = []
    for sid in c.hot_sessions:
        cmds += session_cmds(sid)
    for sid in c.revoked_sessions:
        cmds += session_cmds(sid, revoked=True)
    for sid in c.expired_sessions:  # the key lives, its expires_at has passed
        cmds += session_cmds(sid, expires_at=int(time.time()) - 60)
    for k in c.apikeys:
        cmds += apikey_cmds(k)
    for k in c.revoked_apikeys:
        cmds += apikey_cmds(k, revoked=True)
    for _ in range(5):
        jti = tokens.new_jti()
        cmds.append(("SET", f"revoked_jti:{jti}", "1", "EX", str(DAY)))
        c.revoked_tokens.append(tokens.hs256(tokens.claims(TOKEN_USER, DAY // 2, jti)))
    for i in range(0, len(cmds), 200):
        resp.write_retrying(writer, cmds[i:i + 200])
    return c


def write_sessions(writer, n: int) -> list[str]:
    """n fresh sessions, written; their ids."""
    ids = new_session_ids(n)
    cmds = [c for sid in ids for c in session_cmds(sid)]
    for i in range(0, len(cmds), 400):
        resp.write_retrying(writer, cmds[i:i + 400])
    return ids
