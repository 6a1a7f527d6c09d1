"""SQL fragments shared by both seeders: deterministic bearer values and their hashes.

Raw values are derived from the row number so the load generator can recompute them
without reading the database: refresh token ``bench-{i}``, authorization code
``code-{i}``, PKCE verifier ``verifier-{i:040d}`` (RFC 7636 §4.1: 43-128 unreserved
characters) with its S256 challenge (§4.2). Everything is generated inside PostgreSQL
with ``INSERT ... SELECT generate_series``, never row by row.
"""

from __future__ import annotations

import base64
import hashlib

REDIRECT_URI = "com.vigil.bench:/callback"


def refresh_token(i: int) -> str:
    return f"bench-{i}"


def code(i: int) -> str:
    return f"code-{i}"


def verifier(i: int) -> str:
    return f"verifier-{i:040d}"


def challenge(value: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).rstrip(b"=").decode()


def sql_sha256_hex(expr: str) -> str:
    return f"encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"


def sql_sha256(expr: str) -> str:
    """SHA-256 of a text expression as bytes (Vigil's ``core.crypto.token_digest``), in SQL."""
    return f"sha256(convert_to({expr}, 'UTF8'))"


def sql_s256(expr: str) -> str:
    """PKCE S256 of a text expression, base64url without padding, computed in SQL."""
    return f"rtrim(translate(encode(sha256(convert_to({expr}, 'UTF8')), 'base64'), '+/', '-_'), '=')"


SQL_REFRESH = "'bench-' || g"
SQL_CODE = "'code-' || g"
SQL_VERIFIER = "'verifier-' || lpad(g::text, 40, '0')"
