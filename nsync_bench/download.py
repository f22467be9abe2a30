"""Streaming, resumable, hashed HTTP downloads shared by metric weights and dataset archives.

A download streams into ``<file>.part`` and hashes while it writes, so a multi-GB file is never held
in memory or read twice. An interrupted download leaves the ``.part``; the next call asks for the
rest with ``Range: bytes=N-`` and restarts from zero when the server ignores Range (answers 200),
refuses it (416: the ``.part`` is stale) or answers a range that does not start where ours ends.
Callers verify the returned sha256 and move the ``.part`` into place themselves: only they know the
expected hash and the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from nsync_bench.errors import NsyncBenchError
from nsync_bench.io import file_sha256
from nsync_bench.progress import Progress

__all__ = ["CHUNK", "DownloadError", "download", "file_sha256"]

logger = logging.getLogger(__name__)

CHUNK = 1 << 20

Reason = Literal["http", "unreachable", "interrupted", "incomplete"]


class DownloadError(NsyncBenchError):
    """A download failed; ``reason`` says how, so callers can add their own advice.

    ``http``: the server answered an error status; ``unreachable``: no connection (offline?);
    ``interrupted``/``incomplete``: the stream broke or ended early, the ``.part`` is kept for resume.
    """

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def download(
    url: str,
    part: Path,
    *,
    label: str,
    retry_hint: str,
    expected_size: int | None,
    progress: Progress,
    opener: Callable[..., Any] = urllib.request.urlopen,
    timeout: float = 60.0,
) -> str:
    """Stream ``url`` into ``part`` (resuming it when present); return the sha256 of the whole file.

    ``label`` names the download in messages and the progress bar; ``retry_hint`` tells the user how
    to resume (e.g. the command to rerun); ``expected_size`` is the progress total when the server
    sends no Content-Length; ``opener`` exists so tests can serve files from a local server.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "nsync-bench"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = opener(urllib.request.Request(url, headers=headers), timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # range beyond the end: the .part is stale, start over
            part.unlink()
            return download(url, part, label=label, retry_hint=retry_hint, expected_size=expected_size,
                            progress=progress, opener=opener, timeout=timeout)
        raise DownloadError(f"download of {label!r} from {url} failed: HTTP {err.code}", "http") from err
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"download of {label!r} from {url} failed ({err}). Offline?", "unreachable") from err
    with response:
        status = getattr(response, "status", None) or response.getcode()
        resumed = have > 0 and status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            logger.warning("unexpected Content-Range for %s; restarting the download", label)
            part.unlink()
            response.close()
            return download(url, part, label=label, retry_hint=retry_hint, expected_size=expected_size,
                            progress=progress, opener=opener, timeout=timeout)
        if have and not resumed:
            logger.info("server ignored the Range request for %s; restarting the download", label)
            have = 0
        elif resumed:
            logger.info("resuming %s from byte %d (%s)", label, have, part)
        digest = hashlib.sha256()
        if resumed:
            with part.open("rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    digest.update(chunk)
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else (expected_size or 0)
        written = have
        progress.start(f"download {label}", total=total, completed=have)
        try:
            with part.open("ab" if resumed else "wb") as handle:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    progress.advance(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(
                f"download of {label!r} was interrupted after {written} bytes ({err}); {retry_hint}.", "interrupted"
            ) from err
        finally:
            progress.stop()
    if length and written != total:
        raise DownloadError(
            f"download of {label!r} ended early ({written} of {total} bytes); {retry_hint}.", "incomplete"
        )
    return digest.hexdigest()
