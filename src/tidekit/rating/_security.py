"""Secrets, hashes, CSRF tokens and rate limits for the rating app.

- Session tokens are random; the database keeps only their SHA-256, so a leaked database does
  not let anyone act as a rater.
- The Prolific participant id is kept only as an HMAC-SHA-256 with the study's random salt
  (pseudonymous: it lets a returning participant resume, and is never exported).
- CSRF: every form carries ``HMAC(secret, "csrf" | cookie token)``; a request whose token does not
  match its own cookie is refused. Cookies are HttpOnly and SameSite=Lax.
- Rate limits are token buckets in the server's memory (per rater for submissions, per client
  IP for joining and admin log-ins); a restart resets them, which only ever loosens them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time

__all__ = [
    "RateLimiter",
    "check_token",
    "keyed_hash",
    "new_token",
    "sha256_hex",
    "valid_external_id",
]

_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_token(nbytes: int = 24) -> str:
    """A random URL-safe token."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def keyed_hash(key: str, purpose: str, value: str) -> str:
    """HMAC-SHA-256 of ``value`` under ``key``, domain-separated by ``purpose``."""
    return hmac.new(key.encode(), f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


def check_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison that treats a missing token as wrong."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def valid_external_id(value: str | None) -> str | None:
    """An id from a URL parameter (Prolific ids are 24 hex characters), or None if malformed."""
    return value if value and _EXTERNAL_ID.match(value) else None


class RateLimiter:
    """Token buckets keyed by a string: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, float(burst), max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """0.0 if the call may proceed (and is counted), else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()  # bounded memory; forgetting only loosens limits
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
