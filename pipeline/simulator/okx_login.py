"""The simulator's OKX login: one fixed API key set, checked as OKX checks it.

``{"op":"login","args":[{"apiKey","passphrase","timestamp","sign"}]}`` where ``sign`` is
base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")) and ``timestamp`` (Unix seconds) is
within 30 s of the server's clock. Answers are OKX's: ``{"event":"login","code":"0","msg":""}`` or an error
event with the code of what was wrong. Tests and ``make demo`` log in with ``API_KEY``/``SECRET``/``PASSPHRASE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

API_KEY = "cryptolake-sim-key"
SECRET = "cryptolake-sim-secret"
PASSPHRASE = "cryptolake-sim-passphrase"
TIMESTAMP_WINDOW_S = 30
# Channels that need a logged-in connection; OKX answers 60011 to a subscribe without one.
LOGIN_CHANNELS = frozenset(("books-l2-tbt", "books50-l2-tbt"))
NOT_LOGGED_IN = ("60011", "Please log in")


def check(args: Any, now_s: float | None = None) -> tuple[str, str] | None:
    """None when ``args`` (the request's args) log in; else OKX's (code, message) for what is wrong."""
    arg = args[0] if isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict) else None
    if arg is None or not all(isinstance(arg.get(k), str) for k in ("apiKey", "passphrase", "timestamp", "sign")):
        return "60009", "Login failed."
    try:
        ts = float(arg["timestamp"])
    except ValueError:
        return "60004", f"Invalid timestamp: {arg['timestamp']}"
    if not abs((time.time() if now_s is None else now_s) - ts) <= TIMESTAMP_WINDOW_S:  # "nan" is outside too
        return "60004", f"Invalid timestamp: {arg['timestamp']}"
    if arg["apiKey"] != API_KEY:
        return "60005", "Invalid OK-ACCESS-KEY"  # the key is not echoed: the answer is logged and recorded
    if arg["passphrase"] != PASSPHRASE:
        return "60024", "Wrong passphrase."
    want = hmac.new(SECRET.encode(), (arg["timestamp"] + "GET/users/self/verify").encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.b64encode(want), arg["sign"].encode()):  # bytes: any sign text compares
        return "60007", "Invalid sign"
    return None
