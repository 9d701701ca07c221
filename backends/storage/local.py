"""``file://`` artifact store: one file per key under a root folder.

``file:///var/lib/vintner/artifacts`` → root ``/var/lib/vintner/artifacts``; a relative path
(``file://./artifacts``) is resolved against the working directory once, at construction.

Writes go to a temp file *in the target folder* (so ``os.replace`` is a same-filesystem
rename, atomic on POSIX), are fsync'ed, renamed over the target, and the folder is fsync'ed so
the rename itself survives a crash. Temp names start with ``.`` — a segment no valid key can
have — so a leftover temp file can never be mistaken for an artifact. Empty folders are not
pruned on delete: pruning races with a concurrent put creating its temp file there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, ClassVar
from urllib.parse import unquote

from vintner.errors import ArtifactNotFound, ConfigError, StoreUnavailable
from vintner.ports.artifacts import CHUNK_SIZE, ArtifactReader, ArtifactStore, HashingReader


class LocalArtifactStore(ArtifactStore):
    """Artifacts as files below ``root``."""

    scheme: ClassVar[str] = "file"
    options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    @classmethod
    def from_uri(cls, uri: str, options: Mapping[str, str]) -> LocalArtifactStore:
        if not uri.lower().startswith("file://"):
            raise ConfigError(f"Not a file:// URI: {uri!r}")
        rest = uri[len("file://") :]
        if rest.lower().startswith("localhost/"):
            rest = rest[len("localhost") :]
        path = unquote(rest)
        if not path:
            raise ConfigError("file:// artifact store URI needs a folder path")
        return cls(path)

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        # The key is already validated (no "..", no absolute path), so joining cannot escape.
        return self.root.joinpath(*key.split("/"))

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"Artifact folder is not usable: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable("Artifact folder is not writable")

    def _put(self, key: str, reader: HashingReader) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write artifact: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as tmp:
                # Reader errors (TooLarge, a broken client stream) propagate unchanged; the
                # finally below removes the temp file, and the old artifact was never touched.
                while chunk := reader.read(CHUNK_SIZE):
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, target)
            tmp_name = None
            self._fsync_dir(target.parent)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot write artifact: {exc.strerror}") from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        try:
            dir_fd = os.open(path, os.O_RDONLY)
        except OSError:
            return  # some filesystems / platforms cannot open folders; the data is synced
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def _open(self, key: str) -> ArtifactReader:
        try:
            fh: BinaryIO = open(self._path(key), "rb")  # noqa: SIM115 - closed by the reader
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ArtifactNotFound(f"Artifact not found: {key}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"Cannot read artifact: {exc.strerror}") from exc
        size = os.fstat(fh.fileno()).st_size
        # The open handle keeps reading the old inode even if a put replaces the file meanwhile.
        return ArtifactReader(size=size, chunks=self._iter(fh), _closers=[fh.close])

    @staticmethod
    def _iter(fh: BinaryIO) -> Iterator[bytes]:
        try:
            while chunk := fh.read(CHUNK_SIZE):
                yield chunk
        except OSError as exc:
            raise StoreUnavailable(f"Cannot read artifact: {exc.strerror}") from exc
        finally:
            fh.close()

    def _delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass  # deleting a missing key is not an error (a folder is not an artifact)
        except OSError as exc:
            raise StoreUnavailable(f"Cannot delete artifact: {exc.strerror}") from exc

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()
