"""The second factor of a local account's sign-in: TOTP (RFC 6238, by `pyotp`), its QR code
(`segno`), recovery codes, and the sealing of the TOTP secret in the register.

The secret is sealed with AES-GCM under a key derived from the installation's mask key
(`NIR_MASK_KEY_FILE`, HMAC-SHA-256 with a label of its own), and bound to the user's row, so a
copy of the register alone (a backup, a dump) does not let anyone make codes, and a sealed secret
moved to another user opens nothing. The mask key is already the one secret every hub process
has and must keep; losing it means every user enrols again (`hub users reset-second-factor`).

Recovery codes are 80 random bits each (16 base32 letters, shown in groups of four): enough that
a plain SHA-256 of them is as good as a slow hash, so checking one costs nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ISSUER = "NIR"
RECOVERY_CODE_COUNT = 10
# A code of the step before or after the current one is accepted too: a phone's clock and a
# person's typing take some seconds.
VALID_STEPS = (-1, 0, 1)
_SEAL_LABEL = b"nir-totp-secret-v1"
_SEAL_VERSION = "v1"


class Sealer:
    """Seals and opens TOTP secrets with a key derived from the mask key."""

    __slots__ = ("_aead",)

    def __init__(self, mask_key: bytes) -> None:
        self._aead = AESGCM(hmac.digest(mask_key, _SEAL_LABEL, hashlib.sha256))

    def __repr__(self) -> str:
        return "Sealer(key=***)"

    def seal(self, secret: str, user_id: int) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), _bound_to(user_id))
        return f"{_SEAL_VERSION}${base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, user_id: int) -> str | None:
        """The secret, or None if it was sealed with another key or for another user."""
        version, _, body = sealed.partition("$")
        if version != _SEAL_VERSION:
            return None
        raw = base64.b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _bound_to(user_id)).decode()
        except InvalidTag:
            return None


def _bound_to(user_id: int) -> bytes:
    return f"users.id={user_id}".encode()


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def matching_step(secret: str, code: str, now: dt.datetime, after_step: int | None) -> int | None:
    """The time step whose code `code` is, if it is one of the steps around now and later than
    `after_step` (the last one used: a code is accepted once)."""
    code = "".join(code.split())
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for offset in VALID_STEPS:
        step = current + offset
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as inline SVG (no image request, nothing for the CSP to allow)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, title=None))


def grouped(secret: str) -> str:
    """The secret for typing by hand: groups of four letters."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def new_recovery_codes() -> list[str]:
    return [
        grouped(base64.b32encode(secrets.token_bytes(10)).decode()).replace(" ", "-")
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def recovery_code_hash(code: str) -> str | None:
    """The stored form of a recovery code as typed (case, spaces and dashes do not matter), or
    None if it cannot be one."""
    letters = "".join(ch for ch in code.upper() if ch not in " -\t")
    if len(letters) != 16 or not letters.isascii() or not letters.isalnum():
        return None
    return hashlib.sha256(b"nir-recovery-code:" + letters.encode()).hexdigest()
