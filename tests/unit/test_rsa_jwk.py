"""Both signature verifiers accept the same RSA keys: at least 2048 bits (WebCrypto alone would
import a weaker one)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastest.platform.cloudflare.signatures import WebCryptoSignatureVerifier
from fastest.platform.local.signatures import CryptographySignatureVerifier
from fastest.platform.rsa_jwk import MIN_RSA_BITS, modulus_bits, usable_rsa_jwk


def b64url(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def jwk_of(n: int, e: int = 65537) -> dict[str, str]:
    return {"kty": "RSA", "n": b64url(n), "e": b64url(e)}


def test_the_key_size_is_the_modulus_bit_length():
    assert modulus_bits(jwk_of((1 << 2047) | 1)) == 2048
    assert usable_rsa_jwk(jwk_of((1 << 2047) | 1)) and usable_rsa_jwk(jwk_of((1 << 4095) | 1))
    assert not usable_rsa_jwk(jwk_of((1 << 2046) | 1))  # 2047 bits
    assert not usable_rsa_jwk(jwk_of((1 << 1023) | 1))
    padded = {"kty": "RSA", "n": base64.urlsafe_b64encode(b"\x00" + ((1 << 1023) | 1).to_bytes(128, "big")).rstrip(b"=").decode()}
    assert modulus_bits(padded) == 1024  # a leading zero byte does not make a key bigger
    assert MIN_RSA_BITS == 2048


@pytest.mark.parametrize("jwk", [
    {"kty": "EC", "n": b64url((1 << 2047) | 1)}, {"kty": "RSA"}, {"kty": "RSA", "n": ""}, {"kty": "RSA", "n": 12345},
    {"kty": "RSA", "n": "!!!"}, {},
])
def test_anything_unreadable_is_not_usable(jwk):
    assert usable_rsa_jwk(jwk) is False


def signed_by(bits: int) -> tuple[dict[str, str], bytes, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = private.public_key().public_numbers()
    message = b"header.payload"
    return jwk_of(numbers.n, numbers.e), message, private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def test_both_verifiers_refuse_a_weak_key_with_a_valid_signature():
    weak = signed_by(1024)
    assert asyncio.run(CryptographySignatureVerifier().verify_rs256(*weak)) is False
    # Refused before WebCrypto is reached (which is why this runs under CPython, without `js`).
    assert asyncio.run(WebCryptoSignatureVerifier().verify_rs256(*weak)) is False
    strong = signed_by(2048)
    assert asyncio.run(CryptographySignatureVerifier().verify_rs256(*strong)) is True
