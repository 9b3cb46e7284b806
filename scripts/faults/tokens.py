"""JWTs for the load, made here without a crypto library: HS256 with
hmac (new tokens, one per request: cheap enough to mint on the fly), and
RS256 with the test RSA key (tests/fixtures/keys/rsa.key, read once
through `openssl rsa -text`; signing is PKCS#1 v1.5 with the CRT, a few
ms each in pure Python), for the tokens whose key comes from the JWKS
endpoint. Also that endpoint's document."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

from faults.settings import AUDIENCE, HMAC_KID, HMAC_SECRET, ISSUER, RSA_KEY, RSA_KID


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def claims(sub: str, exp_in: int = 3600, jti: str = "") -> dict:
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + exp_in}
    if jti:
        c["jti"] = jti
    return c


def hs256(payload: dict) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": HMAC_KID}).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(HMAC_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def new_jti() -> str:
    return b64url(os.urandom(12))


class Rsa:
    """The test RSA key's numbers, for signing and for the JWKS."""

    FIELDS = ("modulus", "publicExponent", "privateExponent", "prime1", "prime2",
              "exponent1", "exponent2", "coefficient")

    def __init__(self, path: str = RSA_KEY):
        text = subprocess.run(["openssl", "rsa", "-in", path, "-text", "-noout"],
                              capture_output=True, text=True, check=True, timeout=30).stdout
        nums: dict[str, int] = {}
        current = None
        for line in text.splitlines():
            m = re.match(r"^(\w+):\s*(\d+)?", line)
            if m and m.group(1) in self.FIELDS:
                current = m.group(1)
                if m.group(2):  # publicExponent: 65537 (0x10001)
                    nums[current] = int(m.group(2))
                    current = None
                else:
                    nums[current] = 0
                continue
            if current and line.startswith(" "):
                hexpart = line.strip().replace(":", "")
                nums[current] = (nums[current] << (4 * len(hexpart))) | int(hexpart, 16)
        self.n, self.e = nums["modulus"], nums["publicExponent"]
        self.p, self.q = nums["prime1"], nums["prime2"]
        self.dp, self.dq, self.qinv = nums["exponent1"], nums["exponent2"], nums["coefficient"]
        self.size = (self.n.bit_length() + 7) // 8

    def sign(self, msg: bytes) -> bytes:
        # EMSA-PKCS1-v1_5 with SHA-256's DigestInfo prefix.
        prefix = bytes.fromhex("3031300d060960864801650304020105000420")
        t = prefix + hashlib.sha256(msg).digest()
        em = b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t
        m = int.from_bytes(em, "big")
        m1, m2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        h = (self.qinv * (m1 - m2)) % self.p
        return (m2 + h * self.q).to_bytes(self.size, "big")

    def token(self, payload: dict) -> str:
        head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": RSA_KID}).encode())
        body = b64url(json.dumps(payload, separators=(",", ":")).encode())
        return f"{head}.{body}.{b64url(self.sign(f'{head}.{body}'.encode()))}"

    def jwks(self) -> bytes:
        def num(i: int) -> str:
            return b64url(i.to_bytes((i.bit_length() + 7) // 8, "big"))

        return json.dumps({"keys": [{"kty": "RSA", "kid": RSA_KID, "alg": "RS256", "use": "sig",
                                     "n": num(self.n), "e": num(self.e)}]}).encode()
