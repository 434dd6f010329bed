"""Ed25519 signatures of registry manifests: the training job signs, every loader verifies.

A manifest lists the sha256 of every file of a model version, so a valid signature over its exact
bytes vouches for every file. The signature sits beside it in `manifest.sig` (JSON: algorithm, the
signing key's id, the base64 signature of `DOMAIN + manifest bytes`). Keys are PEM files: the
private key (PKCS8) only where models are registered, public keys (SubjectPublicKeyInfo) wherever
models are loaded.

Where the keys are (`tala_ray.core.settings.Settings`):

- `TALA_SIGNING_KEY`: the private key that signs; unset, the local development key
  `~/.tala-ray/keys/signing.key` (created with its public half on first use, mode 0600).
- `TALA_TRUSTED_KEYS`: comma-separated public keys whose signatures are accepted (several during
  a rotation); unset, the local development public key `~/.tala-ray/keys/signing.pub`.

An explicitly configured key that is missing is an error, never replaced by a new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tala_ray.core.errors import UserError
from tala_ray.core.settings import get_settings

ALGORITHM = "ed25519"
DOMAIN = b"tala-ray registry manifest v1\n"  # signatures made for manifests mean nothing elsewhere
PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"


class SignatureError(UserError):
    """A manifest is unsigned, wrongly signed or signed by a key that is not trusted."""


def local_keys_dir() -> Path:
    """The local development key pair's directory (used when no key is configured)."""
    return Path.home() / ".tala-ray" / "keys"


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of the sha256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """The private key the training job signs manifests with."""

    private_key: Ed25519PrivateKey
    path: str

    @property
    def key_id(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, manifest: bytes) -> bytes:
        """The `manifest.sig` bytes for these exact manifest bytes."""
        signature = self.private_key.sign(DOMAIN + manifest)
        record = {"algorithm": ALGORITHM, "key_id": self.key_id, "signature": base64.b64encode(signature).decode()}
        return json.dumps(record, indent=1, sort_keys=True).encode()


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys whose signatures a loader accepts, by key id."""

    keys: dict[str, Ed25519PublicKey]

    def verify(self, manifest: bytes, signature: bytes | None, what: str) -> str:
        """The id of the trusted key that signed `manifest`; SignatureError (naming `what`) otherwise."""
        if signature is None:
            raise SignatureError(f"{what}: manifest is not signed (no manifest.sig); refusing to load. {UNSIGNED_FIX}")
        algorithm, signer, raw = _parse_signature(signature, what)
        if algorithm != ALGORITHM:
            raise SignatureError(
                f"{what}: manifest.sig uses algorithm {algorithm!r}, not {ALGORITHM!r}; refusing to load"
            )
        if signer not in self.keys:
            raise SignatureError(
                f"{what}: manifest signed by key {signer}, which is not trusted (trusted: {', '.join(self.keys)}; "
                "set TALA_TRUSTED_KEYS); refusing to load"
            )
        try:
            self.keys[signer].verify(raw, DOMAIN + manifest)
        except InvalidSignature:
            raise SignatureError(
                f"{what}: manifest signature does not verify (manifest.json changed after signing); refusing to load"
            ) from None
        return signer


UNSIGNED_FIX = (
    "Versions registered before signing: re-run the experiment, or run `tala-ray models sign NAME@VERSION` "
    "with the training key for artifacts you trust"
)


def _parse_signature(signature: bytes, what: str) -> tuple[str, str, bytes]:
    try:
        record = json.loads(signature)
        return str(record["algorithm"]), str(record["key_id"]), base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise SignatureError(f"{what}: manifest.sig is malformed ({type(error).__name__}); refusing to load") from None


# Key files.
def generate_key_pair(directory: Path) -> tuple[Path, Path]:
    """Write a new pair into `directory` (created when missing; never over an existing key): the private
    key with mode 0600, the public key 0644. Returns their paths."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_pair(directory, Ed25519PrivateKey.generate())
    return directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE


def _write_pair(directory: Path, key: Ed25519PrivateKey) -> None:
    pem_private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for name, data, mode in ((PRIVATE_KEY_FILE, pem_private, 0o600), (PUBLIC_KEY_FILE, pem_public, 0o644)):
        try:
            descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise UserError(
                f"keys: {directory / name} exists; remove the pair first or choose another directory"
            ) from None
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)


def _ensure_local_pair() -> Path:
    """The local development pair's directory, its pair created on first use: written into a fresh
    directory that is then renamed into place in one step, so concurrent first uses agree on one pair."""
    directory = local_keys_dir()
    if (directory / PRIVATE_KEY_FILE).exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".keys-"))  # mode 0700
    _write_pair(staging, Ed25519PrivateKey.generate())
    try:
        os.rename(staging, directory)  # fails when another process's pair is already there
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def load_signing_key(path: str | Path) -> SigningKey:
    """The private key in the PEM file at `path`."""
    data = _read_key_file(path, "TALA_SIGNING_KEY", "private")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise UserError(f"TALA_SIGNING_KEY: {path} is not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"TALA_SIGNING_KEY: {path} is a {type(key).__name__}, not an Ed25519 private key")
    return SigningKey(private_key=key, path=str(path))


def load_trusted_keys(paths: list[str | Path]) -> TrustedKeys:
    """The public keys in the PEM files at `paths`."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        data = _read_key_file(path, "TALA_TRUSTED_KEYS", "public")
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as error:
            raise UserError(f"TALA_TRUSTED_KEYS: {path} is not a PEM public key ({error})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UserError(f"TALA_TRUSTED_KEYS: {path} is a {type(key).__name__}, not an Ed25519 public key")
        keys[key_id(key)] = key
    if not keys:
        raise UserError("TALA_TRUSTED_KEYS: names no key file")
    return TrustedKeys(keys=keys)


def _read_key_file(path: str | Path, setting: str, which: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UserError(
            f"{setting}: cannot read the {which} key {str(path)!r} ({error.strerror or error}); "
            "`tala-ray keys init --dir DIR` makes a pair"
        ) from None


# The configured keys.
def configured_signing_key() -> SigningKey:
    """`TALA_SIGNING_KEY`, else the local development key (created on first use)."""
    configured = get_settings().signing_key
    return load_signing_key(configured or _ensure_local_pair() / PRIVATE_KEY_FILE)


def configured_trusted_keys() -> TrustedKeys:
    """`TALA_TRUSTED_KEYS`, else the local development public key (its pair created on first use)."""
    return load_trusted_keys(trusted_key_paths() or [_ensure_local_pair() / PUBLIC_KEY_FILE])


def trusted_key_paths() -> list[str]:
    """The public key files `TALA_TRUSTED_KEYS` names, as absolute paths (empty when unset)."""
    configured = get_settings().trusted_keys or ""
    return [str(Path(part.strip()).expanduser().absolute()) for part in configured.split(",") if part.strip()]


def key_environment() -> dict[str, str]:
    """The key settings given to this process, as environment variables for the Ray processes it starts
    (Serve replicas load models and verify; the private key stays with whoever registers)."""
    paths = trusted_key_paths()
    return {"TALA_TRUSTED_KEYS": ",".join(paths)} if paths else {}
