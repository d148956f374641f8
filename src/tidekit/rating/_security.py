"""Secrets, hashes, CSRF tokens and rate limits for the rating app.

- Session tokens are random; the database keeps only their SHA-256, so a leaked database does
  not let anyone act as a rater.
- The Prolific participant id is kept only as an HMAC-SHA-256 with the study's random salt
  (pseudonymous: it lets a returning participant resume, and is never exported).
- CSRF: every form carries ``HMAC(secret, "csrf" | cookie token)``; a request whose token does not
  match its own cookie is refused. Cookies are HttpOnly and SameSite=Lax.
- Rate limits are token buckets in the server's memory (per rater for submissions, per client
  IP for joining and admin log-ins); a restart resets them, which only ever loosens them.
- Behind a proxy the client address is the right-most ``X-Forwarded-For`` entry that is not one
  of the trusted proxies: a client can prepend anything to the header, but not forge what the
  proxy appends.
- Form numbers are ASCII digits only and bounded (``str.isdigit`` accepts "²" and "٥").
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time

__all__ = [
    "CODE_ALPHABET",
    "RateLimiter",
    "check_token",
    "clean_text",
    "client_address",
    "keyed_hash",
    "new_completion_code",
    "new_token",
    "parse_networks",
    "parse_small_int",
    "sha256_hex",
    "valid_external_id",
    "valid_prolific_pid",
]

# used with fullmatch: with re.match, "$" also matches before a final newline, so "ID\n" passed
# and, hashed apart from "ID", claimed a second slot
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROLIFIC_PID = re.compile(r"[0-9a-fA-F]{24}")
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")
# C0 control characters other than tab and newline (NUL cannot be stored in PostgreSQL text)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_token(nbytes: int = 24) -> str:
    """A random URL-safe token."""
    return secrets.token_urlsafe(nbytes)


# completion codes are read off a screen and typed: no O/0, I/1 (nor L, which some fonts draw as 1)
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_completion_code(length: int = 8) -> str:
    """A random completion code of ``length`` characters that cannot be misread (31 symbols, ~40 bits)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


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
    return value if value and _EXTERNAL_ID.fullmatch(value) else None


def valid_prolific_pid(value: str | None) -> str | None:
    """A Prolific participant id (24 hexadecimal characters), or None."""
    return value if value and _PROLIFIC_PID.fullmatch(value) else None


def parse_small_int(raw: str, low: int, high: int) -> int | None:
    """``raw`` as an int in [low, high] if it is 1-10 ASCII digits, else None."""
    if not _ASCII_DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def clean_text(text: str) -> str:
    """Free text as stored: CRLF to LF, control characters (NUL included) removed, trimmed."""
    return _CONTROL.sub("", text.replace("\r\n", "\n")).strip()


def parse_networks(specs: list[str]) -> list[Network]:
    """Addresses or CIDR networks (``10.0.0.0/8``); raises ValueError naming a bad entry."""
    out = []
    for spec in specs:
        try:
            out.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{spec!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return out


def _trusted(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, proxies: list[Network]) -> str:
    """Who sent the request. ``peer`` is the TCP peer; only when it is a trusted proxy is
    ``X-Forwarded-For`` read, from the right, skipping trusted proxies: the first other entry
    is the address the proxy saw (entries to its left are whatever the client sent)."""
    peer = peer or "unknown"
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


class RateLimiter:
    """Token buckets keyed by a string: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, float(burst), max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def blocked(self, key: str) -> float:
        """The seconds until ``key`` may proceed (0.0 if now), without counting a call."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

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
