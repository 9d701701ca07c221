"""Worker tokens: generated once, stored only as a SHA-256 digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: Recognisable prefix so secret scanners can find leaked worker tokens.
WORKER_TOKEN_PREFIX = "vtw_"


def new_worker_token() -> str:
    """A fresh plaintext token: the prefix plus 32 random bytes, URL-safe base64."""
    return WORKER_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Lowercase hex SHA-256 of the token (what ``workers.token_hash`` holds)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)
