"""OKX v5 WebSocket login, for the channels that need it (``books-l2-tbt``, ``books50-l2-tbt``).

The credentials come from the environment only (``OKX_API_KEY``, ``OKX_API_SECRET``, ``OKX_API_PASSPHRASE``):
a config file gets copied around, and the secret never appears in a repr, a log line or an error. The request is
OKX's documented one: ``{"op":"login","args":[{"apiKey","passphrase","timestamp","sign"}]}`` with ``timestamp``
in Unix seconds and ``sign = base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify"))``; OKX answers
``{"event":"login","code":"0",...}`` or ``{"event":"error","code":"600xx",...}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from pipeline.errors import ConfigError

ENV_VARS = ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE")
VERIFY_PATH = "/users/self/verify"
# The error codes OKX answers a login with (timestamp, key, passphrase, signature, IP whitelist, ...; 60012 a
# malformed request, 60014 the hourly request limit, which counts logins too): any of them ends the login.
LOGIN_ERROR_CODES = frozenset(
    ("60004", "60005", "60006", "60007", "60008", "60009", "60012", "60014", "60022", "60023", "60024", "60026",
     "60032")
)  # fmt: skip
SET_ALL = "set OKX_API_KEY, OKX_API_SECRET and OKX_API_PASSPHRASE (an API key's three parts) in the environment"


@dataclass(frozen=True)
class Credentials:
    api_key: str
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The API key set from the environment; None when none of it is set, ConfigError when only part is."""
    env = os.environ if env is None else env
    values = [env.get(name, "").strip() for name in ENV_VARS]
    if not any(values):
        return None
    missing = [name for name, value in zip(ENV_VARS, values, strict=True) if not value]
    if missing:
        raise ConfigError(", ".join(missing), "OKX API credentials are only partly set", SET_ALL)
    return Credentials(*values)


def sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(secret.encode(), (timestamp + "GET" + VERIFY_PATH).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def login_request(creds: Credentials, now_s: float | None = None) -> str:
    """The login frame, signed for ``now_s`` (OKX accepts a timestamp within 30 s of its clock)."""
    timestamp = str(int(time.time() if now_s is None else now_s))
    arg = {"apiKey": creds.api_key, "passphrase": creds.passphrase, "timestamp": timestamp,
           "sign": sign(creds.secret, timestamp)}  # fmt: skip
    return orjson.dumps({"op": "login", "args": [arg]}).decode()
