"""Sealed values: a JSON list of claims, base64url, and an HMAC-SHA256 of it under a key
(`payload.mac`). Signed approval links, inbox session cookies and stream tickets are
all sealed this way, each under a key of its own; what the claims mean is theirs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mac(key: bytes, text: str) -> str:
    """The base64url HMAC-SHA256 of `text` under `key`."""
    return b64(hmac.new(key, text.encode(), hashlib.sha256).digest())


def seal(key: bytes, claims: list[Any]) -> str:
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{mac(key, payload)}"


def unseal(key: bytes, value: str, *, max_length: int) -> list[Any] | None:
    """The claims if `value` was sealed under `key`; None if it was not, is too long or
    is malformed (one answer for all: no oracle)."""
    payload, dot, signature = value.partition(".")
    if not dot or len(value) > max_length:
        return None
    if not hmac.compare_digest(mac(key, payload).encode(), signature.encode("utf-8", "replace")):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError, binascii.Error):
        return None
    return claims if isinstance(claims, list) else None
