"""The model registry: versioned artifacts with signed sha256 manifests and aliases on any pyarrow filesystem.

Layout under the registry root (a local directory, or an s3:// / gs:// URI):

    <name>/<version>/<files...>      model weights, preprocessing, report (written first)
    <name>/<version>/manifest.sig    Ed25519 signature of manifest.json's bytes (`tala_ray.core.signing`)
    <name>/<version>/manifest.json   sha256 of every file plus lineage and metrics (written last)
    <name>/aliases.json              {"champion": "3", "challenger": "4"}

A version without a manifest is incomplete and invisible. `register` signs with the training
job's key. Loaders take the manifest from `verified_manifest` (its signature checked against the
trusted keys before a byte of it is parsed), then `read_verified` checks every file against its
sha256, and the models are built from the very bytes that were checked (`tala_ray.models.predictors`).
`manifest` reads a manifest for display without checking its signature. The registry knows bytes,
manifests, signatures, aliases and lineage, not models.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime
from typing import Any, Literal

from pyarrow import fs as pafs
from pydantic import BaseModel, ConfigDict, Field

from tala_ray.core import signing
from tala_ray.core.errors import UserError
from tala_ray.core.storage import join_path, resolve_filesystem

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ALIASES = "aliases.json"
ALIAS_NAMES = ("champion", "challenger")
Alias = Literal["champion", "challenger"]


class ArtifactIntegrityError(UserError):
    """A file's bytes do not match the sha256 its manifest recorded (or the file is missing)."""


class ArtifactMetadata(BaseModel):
    """What a caller states about an artifact; the registry adds name, version, files and time."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Artifact kind: 'credit' or 'uplift'.")
    family: str = Field(description="Model family, e.g. 'gbm'.")
    feature_set_version: str | None = None
    feature_names: list[str] = Field(default_factory=list)
    data_content_hash: str | None = None
    git_commit: str = Field(default_factory=lambda: current_git_commit())
    spec: dict[str, Any] = Field(default_factory=dict, description="The experiment spec that produced it.")
    params: dict[str, Any] = Field(default_factory=dict, description="The winning hyperparameters.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Test-split metrics.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else worth keeping (report figures).")


class ArtifactManifest(ArtifactMetadata):
    name: str
    version: str
    created_at: str
    files: dict[str, str] = Field(description="Relative path -> sha256 of its bytes.")


def current_git_commit() -> str:
    """The code's commit: $TALA_GIT_COMMIT, else `git rev-parse HEAD`, else 'unknown' (e.g. in a Ray job)."""
    if os.environ.get("TALA_GIT_COMMIT"):
        return os.environ["TALA_GIT_COMMIT"]
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_model_ref(text: str) -> tuple[str, str | None]:
    """'NAME@VERSION' or 'NAME@ALIAS' -> (name, ref); plain 'NAME' -> (name, None)."""
    name, _, ref = text.partition("@")
    if not name:
        raise UserError(f"model reference {text!r}: give NAME or NAME@VERSION")
    return name, ref or None


class Registry:
    """Versioned artifacts under one root URI.

    `signing_key` signs what `register` and `sign` write, `trusted_keys` are what `verified_manifest`
    accepts; unset, the configured keys (`TALA_SIGNING_KEY`, `TALA_TRUSTED_KEYS`), read when first needed.
    """

    def __init__(
        self,
        uri: str,
        signing_key: signing.SigningKey | None = None,
        trusted_keys: signing.TrustedKeys | None = None,
    ) -> None:
        self.uri = uri
        self.filesystem, self.root = resolve_filesystem(uri)
        self._signing_key = signing_key
        self._trusted_keys = trusted_keys

    # Writing.
    def register(self, name: str, files: dict[str, bytes], metadata: ArtifactMetadata) -> ArtifactManifest:
        """Store `files` as the next version of `name`, signed, and return its manifest."""
        check_name(name)
        key = self.signing_key()  # a missing key fails before a version is claimed
        version = self._claim_next_version(name)
        directory = join_path(self.root, name, version)
        for relative, data in files.items():
            self._write(join_path(directory, relative), data)
        manifest = ArtifactManifest(
            **metadata.model_dump(),
            name=name,
            version=version,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            files={relative: sha256(data) for relative, data in files.items()},
        )
        data = manifest.model_dump_json(indent=1).encode()
        self._write(join_path(directory, SIGNATURE), key.sign(data))  # before the manifest makes it visible
        self._write(join_path(directory, MANIFEST), data)
        return manifest

    def sign(self, name: str, version: str) -> str:
        """Sign an existing version's manifest as it stands (after checking its files against it);
        returns the signing key's id. For versions registered before signing, whose files you trust."""
        data = self._manifest_bytes(name, version)
        self.read_verified(ArtifactManifest.model_validate_json(data))
        key = self.signing_key()
        self._write(join_path(self.root, name, version, SIGNATURE), key.sign(data))
        return key.key_id

    def signing_key(self) -> signing.SigningKey:
        if self._signing_key is None:
            self._signing_key = signing.configured_signing_key()
        return self._signing_key

    def trusted_keys(self) -> signing.TrustedKeys:
        if self._trusted_keys is None:
            self._trusted_keys = signing.configured_trusted_keys()
        return self._trusted_keys

    def set_alias(self, name: str, alias: Alias, version: str) -> None:
        """Point `alias` (champion or challenger) at an existing version."""
        check_alias(alias)
        self.manifest(name, version)  # must exist
        aliases = self.aliases(name) | {alias: version}
        self._write(join_path(self.root, name, ALIASES), json.dumps(aliases, indent=1, sort_keys=True).encode())

    # Reading.
    def names(self) -> list[str]:
        if self.filesystem.get_file_info(self.root).type != pafs.FileType.Directory:
            return []
        entries = self.filesystem.get_file_info(pafs.FileSelector(self.root))
        return sorted(e.base_name for e in entries if e.type == pafs.FileType.Directory and self.versions(e.base_name))

    def versions(self, name: str) -> list[str]:
        """Complete versions of `name` (those with a manifest), oldest first."""
        directory = join_path(self.root, name)
        if self.filesystem.get_file_info(directory).type != pafs.FileType.Directory:
            return []
        entries = self.filesystem.get_file_info(pafs.FileSelector(directory))
        numbered = [e.base_name for e in entries if e.type == pafs.FileType.Directory and e.base_name.isdigit()]
        complete = [v for v in numbered if self._exists(join_path(directory, v, MANIFEST))]
        return sorted(complete, key=int)

    def aliases(self, name: str) -> dict[str, str]:
        path = join_path(self.root, name, ALIASES)
        return json.loads(self._read(path)) if self._exists(path) else {}

    def resolve(self, name: str, ref: str | None = None) -> str:
        """A version number from a version, an alias or 'latest' (the default)."""
        versions = self.versions(name)
        if not versions:
            raise UserError(f"model {name!r}: not in the registry at {self.uri!r}")
        if ref is None or ref == "latest":
            return versions[-1]
        if ref in versions:
            return ref
        aliases = self.aliases(name)
        if ref in aliases:
            return aliases[ref]
        raise UserError(f"model {name!r}: no version or alias {ref!r} (versions {versions}, aliases {aliases})")

    def manifest(self, name: str, version: str) -> ArtifactManifest:
        """The manifest of a version as stored, its signature unchecked (to show; loaders use `verified_manifest`)."""
        return ArtifactManifest.model_validate_json(self._manifest_bytes(name, version))

    def verified_manifest(self, name: str, version: str) -> ArtifactManifest:
        """The manifest of a version, parsed only after its bytes verified against a trusted key
        (SignatureError otherwise), and only if it is the manifest of this very name and version."""
        data = self._manifest_bytes(name, version)
        self._check_signature(name, version, data)
        manifest = ArtifactManifest.model_validate_json(data)
        if (manifest.name, manifest.version) != (name, version):
            raise signing.SignatureError(
                f"model {name}@{version}: holds the signed manifest of {manifest.name}@{manifest.version}; "
                "refusing to load"
            )
        return manifest

    def signer(self, name: str, version: str) -> str:
        """The id of the trusted key that signed the version's manifest (SignatureError when none did)."""
        return self._check_signature(name, version, self._manifest_bytes(name, version))

    def _check_signature(self, name: str, version: str, manifest: bytes) -> str:
        path = join_path(self.root, name, version, SIGNATURE)
        signature = self._read(path) if self._exists(path) else None
        return self.trusted_keys().verify(manifest, signature, f"model {name}@{version}")

    def _manifest_bytes(self, name: str, version: str) -> bytes:
        path = join_path(self.root, name, version, MANIFEST)
        if not self._exists(path):
            raise UserError(f"model {name!r}: no version {version!r} in the registry at {self.uri!r}")
        return self._read(path)

    def read_verified(self, manifest: ArtifactManifest, only: list[str] | None = None) -> dict[str, bytes]:
        """The artifact's files (or `only` these), each checked against its recorded sha256 (trust them
        only as far as `manifest` is trusted: from `verified_manifest`)."""
        files = {}
        for relative in only if only is not None else manifest.files:
            path = join_path(self.root, manifest.name, manifest.version, relative)
            data = self._read(path) if self._exists(path) else None
            if data is None or relative not in manifest.files or sha256(data) != manifest.files[relative]:
                raise ArtifactIntegrityError(
                    f"model {manifest.name}@{manifest.version}: checksum mismatch for {relative!r}; refusing to load"
                )
            files[relative] = data
        return files

    # Storage helpers.
    def _claim_next_version(self, name: str) -> str:
        """Reserve a new version directory; exclusive on local disk, best effort on object stores."""
        directory = join_path(self.root, name)
        self.filesystem.create_dir(directory, recursive=True)
        while True:
            entries = self.filesystem.get_file_info(pafs.FileSelector(directory))
            taken = [int(e.base_name) for e in entries if e.base_name.isdigit()]
            version = str(max(taken, default=0) + 1)
            target = join_path(directory, version)
            if not isinstance(self.filesystem, pafs.LocalFileSystem):
                self.filesystem.create_dir(target)
                return version
            try:
                os.mkdir(target)
                return version
            except FileExistsError:
                continue

    def _exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type == pafs.FileType.File

    def _read(self, path: str) -> bytes:
        with self.filesystem.open_input_stream(path) as stream:
            return stream.read()

    def _write(self, path: str, data: bytes) -> None:
        self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self.filesystem.open_output_stream(path) as stream:
            stream.write(data)


def check_alias(alias: str) -> None:
    if alias not in ALIAS_NAMES:
        raise UserError(f"alias: {alias!r} is not one of {list(ALIAS_NAMES)}")


def check_name(name: str) -> None:
    allowed = name.replace("-", "").replace("_", "").replace(".", "")
    if not name or not allowed.isalnum() or name.startswith("."):
        raise UserError(f"model name {name!r}: use letters, digits, '-', '_' and '.' only")
