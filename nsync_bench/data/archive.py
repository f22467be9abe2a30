"""Safe extraction of dataset archives (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

An archive from the network is untrusted input: a member named ``../../.bashrc`` or
``/etc/cron.d/x``, a symlink ``x -> /home/you`` followed by a member ``x/.ssh/authorized_keys``,
or a device node would write outside the folder it is extracted into ("zip slip", CVE-2007-4559).
Python 3.11 before 3.11.4 has no ``tarfile`` extraction filters, and ``zipfile`` silently
rewrites dangerous names instead of refusing them, so every member is checked here first:

* absolute paths, drive letters (``C:``) and ``..`` components are refused;
* a tar symlink or hardlink must point inside the extraction root, and no member may sit
  below a link (the link's real location would otherwise decide where it lands);
* device files and FIFOs are refused; zip symlinks are refused when they escape, skipped otherwise.

Nothing is written until every member has passed; each write is then checked once more against
the real (symlink-resolved) extraction root. A refused archive raises :class:`DataError` naming
the member. Callers extract into a fresh temporary folder beside the destination and move the
prepared result into place with :func:`install_dir`, so a failure never leaves a half-written style.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from nsync_bench.errors import DataError

__all__ = ["archive_kind", "install_dir", "safe_extract"]

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")


def archive_kind(path: Path) -> str:
    """``"zip"`` or ``"tar"`` by content (a mirror's URL need not end in .zip)."""
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DataError(f"{path} is neither a zip nor a tar archive; check the URL (or pass --url to a mirror).")


def _check_name(archive: Path, name: str) -> str:
    """The member's normalised relative POSIX path, or DataError for absolute paths, drives and ``..``."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise DataError(f"refusing {archive.name}: member {name!r} has an absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"refusing {archive.name}: member {name!r} has a '..' component")
    return "/".join(parts)


def _check_link(archive: Path, name: str, rel: str, target: str, *, hard: bool) -> None:
    """A link target must stay inside the root: symlinks resolve from their folder, hardlinks from the root."""
    unified = target.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise DataError(f"refusing {archive.name}: link {name!r} points to the absolute path {target!r}")
    base = "" if hard else posixpath.dirname(rel)
    resolved = posixpath.normpath(posixpath.join(base, unified))
    if resolved == ".." or resolved.startswith("../"):
        raise DataError(f"refusing {archive.name}: link {name!r} -> {target!r} escapes the extraction folder")


def _below_link(archive: Path, name: str, rel: str, links: set[str]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in links:
            raise DataError(f"refusing {archive.name}: member {name!r} lies below the link {'/'.join(parts[:i])!r}")


def _inside(root: Path, path: Path, archive: Path, name: str) -> Path:
    """Last line of defence at write time: the real parent folder must be inside the real root."""
    real = Path(os.path.realpath(path.parent)) / path.name
    if real != root and root not in real.parents:
        raise DataError(f"refusing {archive.name}: member {name!r} would be written outside {root}")
    return real


def _plan_tar(archive: Path, tar: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, str]]:
    plan, links = [], set()
    for member in tar.getmembers():
        rel = _check_name(archive, member.name)
        if not rel:
            continue  # the root itself ("./")
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise DataError(f"refusing {archive.name}: member {member.name!r} is a device file or FIFO")
        if member.issym() or member.islnk():
            _check_link(archive, member.name, rel, member.linkname, hard=member.islnk())
            if member.issym():
                links.add(rel)
        elif not (member.isfile() or member.isdir()):
            raise DataError(f"refusing {archive.name}: member {member.name!r} has an unsupported type")
        plan.append((member, rel))
    for member, rel in plan:
        _below_link(archive, member.name, rel, links)
    return plan


def _extract_tar(archive: Path, root: Path) -> int:
    with tarfile.open(archive) as tar:
        plan = _plan_tar(archive, tar)
        for member, rel in plan:
            target = _inside(root, root / rel, archive, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.issym():
                os.symlink(member.linkname.replace("\\", "/"), target)
            elif member.islnk():
                source = _inside(root, root / _check_name(archive, member.linkname), archive, member.name)
                if not source.is_file():
                    raise DataError(f"refusing {archive.name}: hardlink {member.name!r} to a missing file")
                shutil.copyfile(source, target)  # a copy, never a link to something we did not write
            else:
                handle = tar.extractfile(member)
                if handle is None:
                    raise DataError(f"{archive.name}: cannot read member {member.name!r}")
                with handle, target.open("xb") as out:
                    shutil.copyfileobj(handle, out)
    return len(plan)


def _zip_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _extract_zip(archive: Path, root: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            rel = _check_name(archive, info.filename)
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
                raise DataError(f"refusing {archive.name}: member {info.filename!r} is a device file or FIFO")
            if _zip_symlink(info):
                link = zf.read(info).decode("utf-8", "replace")
                _check_link(archive, info.filename, rel, link, hard=False)
                log.warning("skipping symlink %s -> %s in %s", info.filename, link, archive.name)
                continue
            if rel:
                plan.append((info, rel))
        for info, rel in plan:
            target = _inside(root, root / rel, archive, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as handle, target.open("xb") as out:
                shutil.copyfileobj(handle, out)
    return len(plan)


def safe_extract(archive: Path, root: Path) -> int:
    """Extract ``archive`` into the existing, empty folder ``root`` after checking every member.

    Returns the number of members written. Raises :class:`DataError` naming the first unsafe
    member before anything is written; the caller removes ``root`` on any failure.
    """
    root = Path(os.path.realpath(root))
    if any(root.iterdir()):
        raise DataError(f"extraction folder {root} is not empty")
    kind = archive_kind(archive)
    try:
        count = _extract_zip(archive, root) if kind == "zip" else _extract_tar(archive, root)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise DataError(f"{archive.name} is damaged ({err}); delete it and fetch again.") from err
    except FileExistsError as err:
        raise DataError(f"refusing {archive.name}: it holds {err.filename} twice") from err
    log.info("extracted %d members of %s", count, archive.name)
    return count


def install_dir(prepared: Path, final: Path, *, replace: bool = False) -> None:
    """Move the finished folder ``prepared`` to ``final`` atomically (same filesystem: a rename).

    With ``replace`` an existing ``final`` is first renamed aside and removed only after the new
    folder is in place, so an interruption leaves either the old or the new data, never a mix.
    """
    if final.exists() and not replace:
        raise DataError(f"{final} already exists; pass --force to replace it")
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(prepared, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old)
        log.info("replaced the previous %s", final)
