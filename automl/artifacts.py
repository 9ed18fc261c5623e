"""Content-checked artifact storage under ``AUTOML_ARTIFACT_ROOT``.

Artifacts are addressed by a key relative to the root (``models/12/model.joblib``) so a shared
root mounted at different paths on different hosts still resolves. Every write is atomic (write
to a temporary file, then rename) and returns the sha256 of the bytes; every checked read
verifies it and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from automl.errors import ArtifactCorrupt, ArtifactMissing

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# What every array in a file that ``joblib.dump`` wrote is pickled as (the files of earlier versions).
JOBLIB_ARRAY = b"NumpyArrayWrapper"


def object_bytes(obj: Any) -> bytes:
    """``obj`` pickled, as :meth:`ArtifactStore.put_object` writes it: the C pickler at protocol 5,
    uncompressed (saving a large forest must take predictable time). A forest of 300 trees pickles
    4 to 13 times faster than through ``joblib.dump``, whose pickler is pure Python so that it can
    write arrays apart, and loads 4 to 6 times faster (bench/RESULTS.md); ``joblib.load`` reads
    these files too."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def load_object(data: bytes) -> Any:
    """What :func:`object_bytes` wrote, or what ``joblib.dump`` wrote (the models of earlier versions),
    unpickled. Only for bytes whose checksum was verified."""
    if JOBLIB_ARRAY in data:  # joblib writes arrays beside the pickle stream: only it reads them back
        import joblib

        return joblib.load(io.BytesIO(data))
    return pickle.loads(data)


class _ByteCounter:
    """A write-only file that keeps only the count of the bytes written to it."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.count += size
        return size


def pickled_size(obj: Any) -> int:
    """The bytes :func:`object_bytes` writes for ``obj``, counted without holding them."""
    counter = _ByteCounter()
    pickle.dump(obj, counter, protocol=pickle.HIGHEST_PROTOCOL)
    return counter.count


class ArtifactStore:
    """Files under one root, written atomically and read back with their checksum verified."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ArtifactCorrupt(
                f"artifact {key} resolves to {path}, outside the artifact root {self.root} (a symbolic link, or "
                "'..' in its key); it is not read",
                hint="artifacts live under AUTOML_ARTIFACT_ROOT: replace the link with the file itself",
            )
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def move(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target`` atomically (same root, so one file system)."""
        destination = self.path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(source), destination)

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` atomically; returns its sha256."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256_bytes(data)

    def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        """Read ``key``; with ``sha256`` given, refuse content that does not match it."""
        path = self.path(key)
        if not path.is_file():
            raise ArtifactMissing(
                f"artifact {key} is missing (expected at {path})",
                hint="check AUTOML_ARTIFACT_ROOT points at the folder the job wrote to",
            )
        data = path.read_bytes()
        if sha256 is not None:
            actual = sha256_bytes(data)
            if actual != sha256:
                raise ArtifactCorrupt(
                    f"artifact {path} fails its checksum: expected sha256 {sha256}, found {actual}",
                    hint="the file was changed or damaged after it was written; restore it or retrain",
                )
        return data

    def put_object(self, key: str, obj: Any) -> str:
        """Pickle ``obj`` at ``key`` (:func:`object_bytes`); returns the sha256 of the file."""
        return self.put_bytes(key, object_bytes(obj))

    def get_object(self, key: str, sha256: str) -> Any:
        """Load an object after verifying its checksum (never unpickle unverified bytes)."""
        return load_object(self.get_bytes(key, sha256))
