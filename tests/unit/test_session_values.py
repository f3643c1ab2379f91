"""The stored form of session values, shared by the local and the Cloudflare session storage."""

from __future__ import annotations

import pytest

from fastest.platform import session_values


@pytest.mark.parametrize("value", [None, True, 0, -3, 2.5, "", "héllo \n \"quoted\"", [], [1, "a", None], {}, {"k": {"n": [1, {"x": "ü"}]}}])
def test_values_round_trip_as_json_text(value):
    text = session_values.encode("key", value)
    assert isinstance(text, str) and "\n" not in text.replace("\\n", "")
    assert session_values.decode(text) == value


def test_the_text_is_compact_and_keeps_unicode():
    assert session_values.encode("k", {"a": [1, 2], "b": "ü"}) == '{"a":[1,2],"b":"ü"}'


@pytest.mark.parametrize("key, value", [
    ("k", {1, 2}), ("k", float("nan")), ("k", float("inf")), ("k", object()), ("k", b"bytes"),
    ("", 1), (3, 1), ("k", "x" * session_values.MAX_ENTRY_BYTES),
])
def test_what_cannot_be_stored_is_refused(key, value):
    with pytest.raises(ValueError):
        session_values.encode(key, value)


def test_the_limit_counts_the_key_and_the_utf8_text():
    fits = "x" * (session_values.MAX_ENTRY_BYTES - 2 - 1)  # the quotes, and a one-byte key
    assert session_values.encode("k", fits)
    with pytest.raises(ValueError):
        session_values.encode("kk", fits)
    with pytest.raises(ValueError):
        session_values.encode("k", "é" * (session_values.MAX_ENTRY_BYTES // 2))
