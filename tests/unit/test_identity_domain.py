"""Pure parts of identity: compact JWS parsing, Google claim checks, Cache-Control, device codes."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import given, strategies as st

from fastest.domain import device_codes, jwt

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
T = int(NOW.timestamp())


def enc(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def claims(**overrides):
    base = {"iss": "https://accounts.google.com", "aud": "cid", "sub": "1", "email": "a@b.c",
            "email_verified": True, "iat": T, "exp": T + 3600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_parse_compact_splits_and_decodes():
    parsed = jwt.parse_compact(f"{enc({'alg': 'RS256', 'kid': 'k'})}.{enc({'a': 1})}.c2ln")
    assert parsed.header == {"alg": "RS256", "kid": "k"} and parsed.claims == {"a": 1}
    assert parsed.signature == b"sig" and parsed.signing_input.count(b".") == 1


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!.e30.e30", f"{enc([1])}.e30.e30", "x" * 9000,
                                   f"{enc({'alg': 'RS256'})}.bm90IGpzb24.e30"])
def test_parse_compact_refuses_what_is_not_a_jws(token):
    with pytest.raises(jwt.InvalidToken):
        jwt.parse_compact(token)


@pytest.mark.parametrize("header", [{"alg": "none", "kid": "k"}, {"alg": "HS256", "kid": "k"}, {"alg": "RS512", "kid": "k"},
                                    {"alg": "rs256", "kid": "k"}, {"alg": "RS256"}, {"alg": "RS256", "kid": ""},
                                    {"alg": "RS256", "kid": "k", "crit": ["b64"]}])
def test_only_rs256_with_a_key_id_is_accepted(header):
    with pytest.raises(jwt.InvalidToken):
        jwt.require_rs256(header)


def test_good_claims_pass():
    jwt.check_google_claims(claims(), now=NOW, audiences={"cid"})
    jwt.check_google_claims(claims(iss="accounts.google.com", email_verified="true"), now=NOW, audiences={"cid"})


@pytest.mark.parametrize("bad", [
    {"iss": "https://accounts.google.com.evil"}, {"iss": None}, {"aud": "other"}, {"aud": ["x", "y"]}, {"aud": None},
    {"exp": T - 301}, {"exp": "soon"}, {"exp": True}, {"iat": T + 301}, {"iat": None}, {"nbf": T + 301},
    {"email_verified": False}, {"email_verified": "false"}, {"email_verified": None}, {"email": None},
    {"email": "no-at"}, {"sub": None}, {"sub": ""},
])
def test_bad_claims_are_refused(bad):
    with pytest.raises(jwt.InvalidToken):
        jwt.check_google_claims(claims(**bad), now=NOW, audiences={"cid"})


@pytest.mark.parametrize("header, expected", [
    ("public, max-age=3600, must-revalidate", 3600), ("max-age=\"60\"", 60), ("no-store", None),
    ("no-cache, max-age=60", None), ("public", None), (None, None), ("max-age=abc", None),
])
def test_max_age(header, expected):
    assert jwt.max_age_seconds(header) == expected


@given(st.binary(min_size=32, max_size=64))
def test_user_codes_use_only_the_alphabet_and_normalise_back(random_bytes):
    try:
        code = device_codes.user_code_from(random_bytes)
    except ValueError:
        return  # too many rejected bytes in this sample
    assert len(code) == 8 and set(code) <= set(device_codes.USER_CODE_ALPHABET)
    shown = device_codes.display_user_code(code)
    assert device_codes.normalise_user_code(shown) == code
    assert device_codes.normalise_user_code(shown.lower().replace("-", " ")) == code


def test_user_codes_are_unbiased_over_the_alphabet():
    counts = Counter(device_codes.user_code_from(bytes([b] * 8)) [0] for b in range(240))
    assert set(counts.values()) == {12}


@pytest.mark.parametrize("text", ["", "BCDF-GHJ", "BCDF-GHJKL", "AEIO-UBCD", "BCDF-GHJ1", "x" * 40, "BCDF_GHJK"])
def test_bad_user_codes_do_not_normalise(text):
    assert device_codes.normalise_user_code(text) is None


def test_device_codes_carry_32_bytes_and_hash_stably():
    code = device_codes.device_code_from(bytes(range(32)))
    assert len(code) == 43 and device_codes.device_code_hash(code) == device_codes.device_code_hash(code)
    with pytest.raises(ValueError):
        device_codes.device_code_from(b"short")
