"""The rating app's small security helpers: client address behind proxies, strict numbers, text
cleaning, Prolific ids and the rate limiter's peek."""

from __future__ import annotations

import pytest

from tidekit.rating._security import (
    CODE_ALPHABET,
    RateLimiter,
    clean_text,
    client_address,
    new_completion_code,
    parse_networks,
    parse_small_int,
    valid_external_id,
    valid_prolific_pid,
)

PROXIES = parse_networks(["127.0.0.1", "::1", "10.0.0.0/8"])


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("127.0.0.1", "198.51.100.9", "198.51.100.9"),  # one proxy
    ("127.0.0.1", "6.6.6.6, 198.51.100.9", "198.51.100.9"),  # a forged left-most entry is ignored
    ("127.0.0.1", "6.6.6.6, 198.51.100.9, 10.1.2.3", "198.51.100.9"),  # two proxies: skip the trusted hop
    ("203.0.113.4", "6.6.6.6", "203.0.113.4"),  # not from a proxy: the header is the client's own words
    ("127.0.0.1", None, "127.0.0.1"),
    ("127.0.0.1", "10.0.0.1, 127.0.0.1", "10.0.0.1"),  # every hop trusted: the left-most
    ("::1", "2001:db8::7", "2001:db8::7"),
    ("127.0.0.1", "garbage, 198.51.100.9", "198.51.100.9"),
])
def test_the_client_is_the_rightmost_untrusted_hop(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_bad_proxy_entries_are_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks(["10.0.0.300"])


@pytest.mark.parametrize(("raw", "expected"), [
    ("5", 5), ("07", 7), ("0", None), ("8", None), ("\u00b2", None), ("\u0665", None), ("\uff15", None),
    (" 5", None), ("5 ", None), ("+5", None), ("-1", None), ("", None), ("1" * 30, None), ("5.0", None),
])
def test_numbers_are_ascii_digits_in_range(raw: str, expected: int | None) -> None:
    assert parse_small_int(raw, 1, 7) == expected


def test_ids_stop_below_two_to_the_31() -> None:
    assert parse_small_int(str(2**31 - 1), 0, 2**31 - 1) == 2**31 - 1
    assert parse_small_int(str(2**31), 0, 2**31 - 1) is None


def test_text_loses_control_characters_but_keeps_lines() -> None:
    assert clean_text(" a\x00b\r\nc\td\x1b[31m\x7f ") == "ab\nc\td[31m"


def test_prolific_ids_are_24_hex_characters() -> None:
    assert valid_prolific_pid("5f1a2b3c4d5e6f7a8b9c0d1e")
    assert not valid_prolific_pid("5f1a2b3c4d5e6f7a8b9c0d1")
    assert not valid_prolific_pid("zz1a2b3c4d5e6f7a8b9c0d1e")
    assert not valid_prolific_pid(None)


def test_blocked_peeks_without_spending() -> None:
    limiter = RateLimiter(rate=0.001, burst=2)
    assert limiter.blocked("a") == 0.0 and limiter.blocked("a") == 0.0
    assert limiter.allow("a") == 0.0 and limiter.allow("a") == 0.0
    assert limiter.blocked("a") > 0 and limiter.allow("a") > 0


PID = "5f1a2b3c4d5e6f7a8b9c0d1e"
# "$" in a re.match pattern matches before a final "\n": "PID\n" passed, and its hash differed
# from the same link's without the newline, so it claimed a second slot (issue #32)
WHITESPACE = ["\n", "\r\n", " ", "\t", "\r", "\x0b", "\x0c", "\u00a0", "\u2028", "\u3000"]


@pytest.mark.parametrize("ws", WHITESPACE)
@pytest.mark.parametrize("where", ["before", "after", "inside"])
def test_ids_with_whitespace_anywhere_are_refused(ws: str, where: str) -> None:
    for valid, ok in ((valid_prolific_pid, PID), (valid_external_id, "STUDY_1-a")):
        assert valid(ok) == ok
        bad = {"before": ws + ok, "after": ok + ws, "inside": ok[:5] + ws + ok[5:]}[where]
        assert valid(bad) is None, (valid.__name__, bad)


def test_external_ids_are_1_to_64_url_safe_characters() -> None:
    assert valid_external_id("a" * 64) and valid_external_id("x")
    for bad in ("a" * 65, "", None, "a/b", "a%0A", "é", "\uff21", "a\x00"):
        assert valid_external_id(bad) is None, bad


def test_completion_codes_cannot_be_misread() -> None:
    """No O/0 or I/1 (nor L) to mix up when a rater copies the code by hand (issue #32)."""
    assert not set("O0I1L") & set(CODE_ALPHABET) and len(set(CODE_ALPHABET)) == len(CODE_ALPHABET) == 31
    codes = {new_completion_code() for _ in range(2000)}
    assert len(codes) == 2000  # random, ~40 bits each
    seen = set("".join(codes))
    assert seen == set(CODE_ALPHABET)  # every symbol used, none other
    assert all(len(c) == 8 for c in codes)


def test_a_new_study_gets_such_a_code(tmp_path, make_study) -> None:  # type: ignore[no-untyped-def]
    from tidekit.rating import RatingStore

    for n in range(5):
        db, _ = make_study(str(tmp_path / f"s{n}.db"))
        store = RatingStore.open(db)
        try:
            code = store.info.completion_code
        finally:
            store.close()
        assert len(code) == 8 and set(code) <= set(CODE_ALPHABET), code
