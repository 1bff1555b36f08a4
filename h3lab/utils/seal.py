"""Sealed tokens: a JSON value encrypted and authenticated, for cookies and headers.

The cryptography is ``cryptography``'s, never home-made:

* a 256-bit *master key* per password, from PBKDF2-HMAC-SHA256 with
  ``PBKDF2_ITERATIONS`` rounds. It is derived once per password per process
  (cached): that is what makes guessing the password from a stolen token
  expensive, without paying it on every request the way iron (h3's seal)
  does with a fresh PBKDF2 per seal and per unseal;
* a fresh key per token, from HKDF-SHA256 over the master key with a random
  16-byte salt (so no two tokens share a key, and AES-GCM's random-nonce
  limit of about 2**32 messages per key never comes into play);
* AES-256-GCM over the JSON bytes, with a random 96-bit nonce and the
  ``context`` (for sessions: the cookie name) as associated data, so a token
  sealed for one purpose does not open for another.

Token: ``h3s1.`` + base64url(salt ‖ nonce ‖ ciphertext ‖ tag), cookie-safe.

Key rotation: ``passwords`` is a list; the first seals, every one is tried
to unseal (GCM's tag check fails fast on a wrong key). ``unseal`` returns
None for anything it cannot open -- tampered, truncated, foreign, sealed
with a retired password -- and never raises on hostile input.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

__all__ = ["MIN_PASSWORD_LENGTH", "PBKDF2_ITERATIONS", "check_passwords", "seal", "unseal"]

PREFIX = "h3s1"
MIN_PASSWORD_LENGTH = 32  # h3's rule: a password is a random secret, not a word
PBKDF2_ITERATIONS = 100_000  # ~0.1 s, once per password per process
_KDF_SALT = b"h3lab.seal.v1"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_TOKEN_CHARS = 400_000  # 100 chunked cookies of 4000: h3's chunk cap


def check_passwords(password: str | Sequence[str]) -> tuple[str, ...]:
    """``password`` (one, or several for rotation) as a validated tuple."""
    passwords = (password,) if isinstance(password, str) else tuple(password)
    if not passwords:
        raise ValueError("password: at least one password is required")
    for candidate in passwords:
        if not isinstance(candidate, str) or len(candidate) < MIN_PASSWORD_LENGTH:
            raise ValueError(
                f"password must be a str of at least {MIN_PASSWORD_LENGTH} characters "
                "(use a random secret, e.g. secrets.token_urlsafe(32))"
            )
    return passwords


@functools.lru_cache(maxsize=64)
def _master_key(password: str) -> bytes:
    kdf = PBKDF2HMAC(hashes.SHA256(), 32, _KDF_SALT, PBKDF2_ITERATIONS)
    return kdf.derive(password.encode())


def _token_key(master: bytes, salt: bytes) -> AESGCM:
    key = HKDF(hashes.SHA256(), 32, salt, PREFIX.encode()).derive(master)
    return AESGCM(key)


def seal(value: Any, passwords: Sequence[str], *, context: str = "") -> str:
    """``value`` (JSON-able) as a sealed token, under the first password."""
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    salt = os.urandom(_SALT_BYTES)
    nonce = os.urandom(_NONCE_BYTES)
    aead = _token_key(_master_key(passwords[0]), salt)
    sealed = aead.encrypt(nonce, plaintext, _aad(context))
    body = base64.urlsafe_b64encode(salt + nonce + sealed).rstrip(b"=").decode("ascii")
    return f"{PREFIX}.{body}"


def unseal(token: str, passwords: Sequence[str], *, context: str = "") -> Any | None:
    """The value sealed in ``token``, or None when no password opens it."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        return None
    prefix, dot, body = token.partition(".")
    if prefix != PREFIX or not dot:
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _SALT_BYTES + _NONCE_BYTES + _TAG_BYTES:
        return None
    salt = raw[:_SALT_BYTES]
    nonce = raw[_SALT_BYTES : _SALT_BYTES + _NONCE_BYTES]
    sealed = raw[_SALT_BYTES + _NONCE_BYTES :]
    aad = _aad(context)
    for password in passwords:
        try:
            plaintext = _token_key(_master_key(password), salt).decrypt(nonce, sealed, aad)
        except InvalidTag:
            continue
        try:
            return json.loads(plaintext)
        except ValueError:  # authentic but not ours (another format): refuse it
            return None
    return None


def _aad(context: str) -> bytes:
    return f"{PREFIX}:{context}".encode()
