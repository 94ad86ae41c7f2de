"""The data home in a Unity Catalog volume, written through databricks-sdk's Files API.

    home = VolumeDataHome.from_env()          # TRADEWATCH_VOLUME, DATABRICKS_HOST, _TOKEN
    home.write_atomic("monitoring/quality/quality-<run>.ndjson", lines)

`VolumeDataHome` is the `core.datahome.DataHome` interface on `/Volumes/<catalog>/<schema>/
<volume>`, for a collector or a flow running anywhere (a Prefect worker, a laptop): nothing has
to run inside the workspace, and no `/Volumes` mount is needed. Every call is one or a few
requests of the Files API (`/api/2.0/fs/files{path}`, `/api/2.0/fs/directories{path}`) made by
the real SDK client (`WorkspaceClient().files`).

Atomicity. The Files API has no rename or copy, so the local recipe (write a hidden temporary,
rename it into place) has no equivalent: a temporary would have to be uploaded again under the
final name, and that second upload would need the very guarantee the first was meant to give.
What is relied on instead is the Files API's own unit of work: a file is written by ONE
single-request upload (`PUT /api/2.0/fs/files{path}`), which Databricks documents as uploading
"a complete file ... in a single operation" whose resulting file holds exactly the bytes of the
request body (Files API reference, "Upload a file"; docs.databricks.com/api/workspace/files/
upload), onto the volume's cloud object storage, where a single PUT creates the object whole or
not at all (S3 "never adds partial objects"; GCS and ADLS object writes likewise). Large-file
multipart uploads (Files API 3.0) also appear only at their complete-upload step, but they are
never used here: the SDK's multipart client is switched off (`disable_experimental_files_api_
client`), so every write of up to 5000 MiB is that one PUT, and a larger one is refused with a
clear error. A reader such as dbt's `read_files` therefore sees the previous file (or none) until
the upload completes, then the whole new one.

Failures. The SDK retries a dropped connection and throttling (429/503) itself, rewinding the
body, within `retry_timeout_seconds` (uploads overwrite, so resending one whose answer was lost
writes the same bytes again); anything it gives up on becomes a `VolumeError`, an
`OSError` whose one-line message names the action and the volume path, never the token, and whose
errno says whether retrying can help (ETIMEDOUT, EIO: yes; EACCES, ENOENT, EINVAL: no), as a full
local disk does. The caller keeps its data: the landing writer keeps its buffered trades and
lands them on the next flush. The token is read from the environment when the client is built
and lives only in the SDK's config (whose repr masks it); it is sent only to DATABRICKS_HOST.
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any, ClassVar

from core.datahome import Data

#: A single-request upload takes files up to 5000 MiB (Files API reference).
MAX_SINGLE_UPLOAD_BYTES = 5000 * 1024 * 1024
_VOLUME = re.compile(r"^/Volumes/[^/]+/[^/]+/[^/]+(/[^/]+)*$")


class VolumeError(OSError):
    """A Files API call failed; `errno` says whether retrying can help (see the module doc)."""


class MissingVolumeSetting(VolumeError):
    """A setting the volume needs is not in the environment (or is malformed)."""


def default_volume(environ: Mapping[str, str] | None = None) -> str:
    """`TRADEWATCH_VOLUME`, else `/Volumes/<DATABRICKS_CATALOG>/<DATABRICKS_SCHEMA>/tradewatch`
    (catalog `tradewatch`, schema `main` by default): the dbt macro `data_home` reads the same."""
    env = os.environ if environ is None else environ
    catalog = env.get("DATABRICKS_CATALOG") or "tradewatch"
    schema = env.get("DATABRICKS_SCHEMA") or "main"
    return (env.get(VolumeDataHome.VOLUME) or f"/Volumes/{catalog}/{schema}/tradewatch").strip()


class VolumeDataHome:
    """A data home in a Unity Catalog volume, through databricks-sdk's Files API.

    `volume` is `/Volumes/<catalog>/<schema>/<volume>` (or a folder inside one). The client is
    built on first use from `host` and the token in the environment variable `token_env`;
    `client` replaces it (a `WorkspaceClient`). Retries of the SDK stop after
    `retry_timeout_seconds`; one HTTP request waits at most `http_timeout_seconds`.
    """

    VOLUME, HOST, TOKEN = "TRADEWATCH_VOLUME", "DATABRICKS_HOST", "DATABRICKS_TOKEN"

    _transient: ClassVar[tuple[str, ...]] = (
        "TooManyRequests", "InternalError", "TemporarilyUnavailable", "DeadlineExceeded",
        "Aborted", "Cancelled",
    )

    def __init__(
        self,
        volume: str,
        *,
        host: str | None = None,
        token_env: str = TOKEN,
        environ: Mapping[str, str] | None = None,
        client: Any = None,
        retry_timeout_seconds: int = 30,
        http_timeout_seconds: int = 30,
    ) -> None:
        volume = volume.rstrip("/")
        if not _VOLUME.match(volume) or ".." in volume.split("/"):
            raise MissingVolumeSetting(
                errno.EINVAL,
                f"{self.VOLUME}: {volume!r} is not a volume path "
                "/Volumes/<catalog>/<schema>/<volume>",
            )
        self.volume = volume
        self.host = host
        self.token_env = token_env
        self.retry_timeout_seconds = retry_timeout_seconds
        self.http_timeout_seconds = http_timeout_seconds
        self._environ = environ
        self._client = client
        self._directories: set[str] = set()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> VolumeDataHome:
        """The volume of `TRADEWATCH_VOLUME` (see `default_volume`) in the workspace of
        `DATABRICKS_HOST`; MissingVolumeSetting names every variable that is not set."""
        env = os.environ if environ is None else environ
        missing = [name for name in (cls.HOST, cls.TOKEN) if not env.get(name)]
        if missing:
            raise MissingVolumeSetting(
                errno.EINVAL,
                f"set {', '.join(missing)} to write the data home to a Unity Catalog volume "
                "(or use a local data home with the local target)",
            )
        return cls(default_volume(env), host=env[cls.HOST], environ=environ, **options)

    def __repr__(self) -> str:
        return f"VolumeDataHome({self.volume!r}, host={self.host!r})"

    # ----------------------------------------------------------------- the client

    def _files(self) -> Any:
        if self._client is None:
            from databricks.sdk import WorkspaceClient  # lazily: only the databricks target
            from databricks.sdk.config import Config

            env = os.environ if self._environ is None else self._environ
            token = env.get(self.token_env)
            if not self.host or not token:
                raise MissingVolumeSetting(
                    errno.EINVAL, f"set {self.HOST} and {self.token_env} to reach {self.volume}"
                )
            config = Config(
                host=self.host, token=token, auth_type="pat",
                retry_timeout_seconds=self.retry_timeout_seconds,
                http_timeout_seconds=self.http_timeout_seconds,
                # One PUT per file: the multipart client would split large files into parts.
                disable_experimental_files_api_client=True,
            )
            self._client = WorkspaceClient(config=config)
        return self._client.files

    def _fail(self, action: str, remote: str, exc: BaseException) -> VolumeError:
        """`exc` as a one-line VolumeError (the token, should a server echo it, masked)."""
        from databricks.sdk.errors import (
            DatabricksError,
            NotFound,
            PermissionDenied,
            Unauthenticated,
        )

        name = type(exc).__name__
        if isinstance(exc, NotFound):
            code = errno.ENOENT
        elif isinstance(exc, PermissionDenied | Unauthenticated):
            code = errno.EACCES
        elif isinstance(exc, DatabricksError):
            transient = any(kind.__name__ in self._transient for kind in type(exc).__mro__)
            code = errno.EIO if transient else errno.EINVAL
        elif isinstance(exc, TimeoutError):  # the SDK's retries ran out (connection errors)
            code = errno.ETIMEDOUT
            cause = exc.__cause__
            name = type(cause).__name__ if cause is not None else name
        else:  # requests' ConnectionError, Timeout, ... (an OSError or not)
            code = errno.ETIMEDOUT
        text = " ".join(str(exc).split()).split(" Config: ")[0] or name  # no SDK config dump
        env = os.environ if self._environ is None else self._environ
        token = env.get(self.token_env)
        if token:
            text = text.replace(token, "***")
        where = f"{self.host or 'the workspace'}"
        message = f"cannot {action} {remote} on {where}: {name}: {text[:300]}"
        if code == errno.ENOENT:
            message += " (does the volume exist? `dbt run-operation tradewatch_setup` makes it)"
        return VolumeError(code, message)

    # ----------------------------------------------------------------- paths

    def remote(self, relative: str = "") -> str:
        """The volume path of `relative` (ValueError for a path that would leave the root)."""
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{relative!r} is not a path inside the data home {self.volume}")
        return "/".join([self.volume, *path.parts])

    def _relative(self, remote: str) -> str:
        return remote[len(self.volume) + 1:]

    # ----------------------------------------------------------------- DataHome

    def write_atomic(self, relative: str, data: Data) -> PurePosixPath:
        """Upload one file in a single PUT, so that it appears whole or not at all (module doc);
        create its folder first. A failure raises VolumeError and leaves what was there."""
        remote = self.remote(relative)
        if isinstance(data, str):
            body = data.encode("utf-8")
        elif isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
        else:
            body = b"".join(data)
        if len(body) > MAX_SINGLE_UPLOAD_BYTES:
            raise VolumeError(
                errno.EFBIG, f"cannot write {remote}: {len(body):,} bytes is over the "
                f"{MAX_SINGLE_UPLOAD_BYTES:,}-byte limit of one upload; write smaller files",
            )
        parent = remote.rsplit("/", 1)[0]
        try:
            files = self._files()
            if parent not in self._directories:
                files.create_directory(parent)  # like mkdir -p; idempotent
                self._directories.add(parent)
            files.upload(remote, io.BytesIO(body), overwrite=True)
        except VolumeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            raise self._fail("write", remote, exc) from None
        return PurePosixPath(remote)

    def read(self, relative: str) -> bytes:
        """The content of one file (FileNotFoundError when there is none)."""
        from databricks.sdk.errors import NotFound

        remote = self.remote(relative)
        try:
            response = self._files().download(remote)
            with response.contents as contents:
                return bytes(contents.read())
        except NotFound:
            raise FileNotFoundError(errno.ENOENT, f"no file {remote} in the volume") from None
        except VolumeError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", remote, exc) from None

    def list(self, relative: str = "", pattern: str = "*") -> list[str]:
        """Completed files under `relative` whose path below it matches the glob `pattern`
        (`*` within one folder, `**` any depth), sorted, relative to the root. Names starting
        with "." are skipped, as dbt's read_files skips them (and those starting with "_")."""
        folder = self.remote(relative)
        parts = tuple(part for part in pattern.split("/") if part)
        try:
            return sorted(self._relative(path) for path in self._walk(folder, parts))
        except VolumeError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("list", folder, exc) from None

    def exists(self, relative: str) -> bool:
        """Whether a file is there."""
        from databricks.sdk.errors import NotFound

        remote = self.remote(relative)
        try:
            self._files().get_metadata(remote)
        except NotFound:
            return False
        except VolumeError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("look for", remote, exc) from None
        return True

    def remove(self, relative: str) -> None:
        """Delete one file (one DELETE); a file that is not there is fine. Any other failure
        raises VolumeError and leaves the file as it was."""
        from databricks.sdk.errors import NotFound

        remote = self.remote(relative)
        try:
            self._files().delete(remote)
        except NotFound:
            return
        except VolumeError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail("remove", remote, exc) from None

    def _entries(self, folder: str) -> tuple[tuple[str, bool], ...]:
        from databricks.sdk.errors import NotFound

        try:
            return tuple(
                (str(entry.path).rstrip("/"), bool(entry.is_directory))
                for entry in self._files().list_directory_contents(folder)
                if entry.path and not str(entry.path).rstrip("/").rsplit("/", 1)[-1].startswith(".")
            )
        except NotFound:
            return ()

    def _walk(self, folder: str, parts: tuple[str, ...]) -> Iterator[str]:
        """Files under `folder` matching the pattern `parts`. A pattern without `**` lists
        only the folders it can reach, one level per part; one with `**` lists the whole tree."""
        if "**" in parts:
            matches = _glob_regex(parts)
            yield from (path for path in self._tree(folder)
                        if matches.match(path[len(folder) + 1:]))
            return
        if not parts:
            return
        head, rest = parts[0], parts[1:]
        for path, is_directory in self._entries(folder):
            if fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], head):
                if rest and is_directory:
                    yield from self._walk(path, rest)
                elif not rest and not is_directory:
                    yield path

    def _tree(self, folder: str) -> Iterator[str]:
        for path, is_directory in self._entries(folder):
            if is_directory:
                yield from self._tree(path)
            else:
                yield path


def _glob_regex(parts: tuple[str, ...]) -> re.Pattern[str]:
    """A glob's parts as one regex over "/"-separated paths: `**` spans any number of folders,
    `*` and `?` stay within one name."""
    pieces = []
    for part in parts:
        if part == "**":
            pieces.append("(?:[^/]+/)*")
            continue
        piece = "".join(
            "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            for char in part
        )
        pieces.append(piece + "/")
    return re.compile("".join(pieces).removesuffix("/") + r"\Z")
