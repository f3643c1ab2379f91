"""Paddle-Signature verification (domain/paddle_signature.py), with Paddle SDK's published vector."""

from __future__ import annotations

import pytest

from fastest.domain.paddle_signature import parse, secrets_from_setting, sign, verify

# Published by Paddle's SDKs: valid, and only the second h1 matches.
VECTOR_BODY = b"hello-world"
VECTOR_SECRET = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh"
VECTOR_TS = 1696195954
VECTOR_HEADER = f"ts={VECTOR_TS};h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"


def check(header=VECTOR_HEADER, body=VECTOR_BODY, secrets=(VECTOR_SECRET,), now=VECTOR_TS, tolerance=5):
    return verify(header, body, list(secrets), now=now, tolerance=tolerance)


def test_paddles_published_vector_verifies_on_the_second_h1():
    assert check().ok
    assert parse(VECTOR_HEADER).signatures[0] == "dummy"


def test_only_the_exact_raw_bytes_verify():
    assert not check(body=b"hello-world ").ok
    assert not check(body=b"hello-worle").ok
    assert not check(body=b"").ok


def test_a_wrong_secret_fails_and_rotation_accepts_any_configured_secret():
    assert not check(secrets=("pdl_ntf_wrong",)).ok
    assert check(secrets=("pdl_ntf_old_secret", VECTOR_SECRET)).ok
    assert not check(secrets=()).ok and not check(secrets=("",)).ok


@pytest.mark.parametrize("offset, ok", [(0, True), (5, True), (-5, True), (6, False), (-6, False), (3600, False)])
def test_the_timestamp_must_be_within_the_tolerance_in_both_directions(offset, ok):
    # offset > 0: we are later than the signature (stale); < 0: the signature is from the future.
    assert check(now=VECTOR_TS + offset).ok is ok


def test_a_wider_tolerance_is_honoured():
    assert check(now=VECTOR_TS + 60, tolerance=60).ok


@pytest.mark.parametrize("header", [
    None, "", "h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02", f"ts={VECTOR_TS}",
    f"ts=abc;h1=x", f"ts={VECTOR_TS};ts={VECTOR_TS};h1=x", "garbage", f"ts=-{VECTOR_TS};h1=x", "x" * 5000,
])
def test_missing_or_malformed_headers_fail(header):
    assert not check(header=header).ok


def test_sign_produces_what_verify_accepts_and_several_h1_are_all_tried():
    header = sign("s3cret", 1000, b"{}")
    assert verify(header, b"{}", ["s3cret"], now=1000).ok
    rotated = f"ts=1000;h1={'0' * 64};h1={parse(header).signatures[0]}"
    assert verify(rotated, b"{}", ["other", "s3cret"], now=1000).ok


def test_secrets_setting_is_comma_separated():
    assert secrets_from_setting(" a, b ,,c ") == ["a", "b", "c"]
    assert secrets_from_setting("") == []
