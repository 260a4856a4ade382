"""Where eominer keeps its files: the default database, analysis-ready COGs, models, exports;
and who works in it when nobody logs in.

The workspace is `$EOMINER_HOME`, else `~/.eominer`. The default database is
`<workspace>/eominer.duckdb`; the database URL comes from `--db`, else `$EOMINER_DB`.
"""

from __future__ import annotations

import fcntl
import getpass
import itertools
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def os_user() -> str:
    """The operating-system user: the app's user without a log-in and the CLI's default
    owner, so that a session made in one is the user's own in the other."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "analyst"


# This process's eominer command line (set by `eominer.cli.main`): the runner records it
# with each job it starts, for `eominer jobs resume`. Options left out: --db (a URL may hold
# a password; the job is resumed from its own database) and the app's --progress-log.
_COMMAND: list[str] = []
_PRIVATE = ("--db", "--progress-log")


def set_command(args: Iterable[str]) -> None:
    """`eominer`'s arguments (after the program name), kept without the private options."""
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in _PRIVATE:
            skip = True
        elif not a.startswith(tuple(f"{o}=" for o in _PRIVATE)):
            kept.append(a)
    _COMMAND[:] = kept


def command() -> str | None:
    """The command line set by `set_command`, shell-quoted; None outside the CLI."""
    import shlex

    return shlex.join(["eominer", *_COMMAND]) if _COMMAND else None


def job_user() -> str:
    """Who starts a job: the app's user for a job it launched (EOMINER_JOB_USER), else the
    operating-system user."""
    return os.environ.get("EOMINER_JOB_USER") or os_user()


def workspace(create: bool = True) -> Path:
    root = Path(os.environ.get("EOMINER_HOME") or Path.home() / ".eominer").expanduser()
    if create:
        for sub in ("ard", "models", "exports", "layers"):
            (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def default_db_url() -> str:
    return os.environ.get("EOMINER_DB") or f"duckdb:///{workspace() / 'eominer.duckdb'}"


def staged(dest: Path) -> Path:
    """Where `dest` is written before its row commits and it is renamed into place: a
    hidden name beside it that keeps the suffix (Keras chooses the format by it)."""
    return dest.with_name(f".{dest.stem}.staged{dest.suffix}")


def _candidates(path: Path) -> Iterator[Path]:
    yield path
    for n in itertools.count(2):
        yield path.with_name(f"{path.stem}-{n}{path.suffix}")


def _lock(dest: Path) -> Path:
    return staged(dest).with_name(staged(dest).name + ".lock")


_COMMITTING = b"committing"  # the lock file's mark: a row names `dest`


class Claim:
    """A name of the workspace held by this process: `dest`, with its `staged` file
    (created empty, then written by the caller) and a lock file beside it, flock-ed for
    as long as the claim lives. The kernel drops the flock when the process dies, so a
    name whose writer was killed (SIGKILL, a power cut) is free again: the next claimant
    takes it, and the staged file's partial contents with it (a crop's COG, a model),
    instead of `-2` and a file nobody removes. A claim marked `committing` is never
    taken: a row may name `dest`, and the re-run of that database moves its file into
    place (`settle`)."""

    def __init__(self, dest: Path, fd: int) -> None:
        self.dest, self.staged, self._fd = dest, staged(dest), fd
        with _HELD_LOCK:
            _HELD[dest] = self

    def committing(self) -> None:
        """Before the commit of the row that names `dest`: from now on the name is not
        taken back, even when this process dies before the file is in place."""
        os.pwrite(self._fd, _COMMITTING, 0)
        os.fsync(self._fd)

    def keep(self) -> None:
        """Let go of the lock, leaving the claim as it is (committed, its file not yet
        in place: the re-run settles it)."""
        if self._fd >= 0:
            with _HELD_LOCK:
                _HELD.pop(self.dest, None)
            os.close(self._fd)
            self._fd = -1

    def release(self) -> None:
        """Give the name up: the staged file (unless already renamed into place) and
        the lock file go."""
        if self._fd < 0:
            return
        self.staged.unlink(missing_ok=True)
        _lock(self.dest).unlink(missing_ok=True)  # unlinked while held (see `_hold`)
        self.keep()


_HELD: dict[Path, Claim] = {}  # the claims this process holds, by name
_HELD_LOCK = threading.Lock()


def mark_committing(dest: Path) -> None:
    """`Claim.committing` for the claim this process holds on `dest`, if it holds one:
    for a writer that puts its file in place before its row (a change layer), where the
    code that commits the row is handed the path, not the claim."""
    with _HELD_LOCK:
        name = _HELD.get(Path(dest))
    if name is not None:
        name.committing()


def _hold(lock: Path) -> tuple[int, bool] | None:
    """An exclusive flock on `lock` (created if missing): (fd, created), or None when a
    live process holds it. A lock file unlinked by its releaser between our open and our
    flock is not the name's lock any more: open the new one."""
    while True:
        try:
            fd, created = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            try:
                fd, created = os.open(lock, os.O_RDWR), False
            except FileNotFoundError:
                continue  # released meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, created
        os.close(fd)


def claim(path: Path, also: Callable[[Path], Iterable[Path]] = lambda _: ()) -> Claim:
    """`path`, or `<stem>-2<suffix>`, `-3`, ...: the first name that no file holds, staged
    or in place, claimed in one step: a writer of another database (or thread) that looks
    at the same moment moves on to the next name instead of sharing this one. A new ARD,
    model or layer of one database must not replace a file that another database of the
    same workspace names (`products remove` in one would delete the other's ARD); the
    row records the path, so the name need not be predictable. The caller writes
    `staged`, marks the claim `committing`, commits its row, renames `staged` to `dest`,
    and releases the claim (also when anything failed).

    A writer that puts its files in place before its row (a change layer: `dest` and
    the files `also(dest)` names) and is killed before marking its claim leaves files no
    row names: the next claimant removes them and takes the name. The lock file and
    empty staged file of a writer killed after its commit, its file in place, go too."""
    for p in _candidates(path):
        if p.exists() and not _lock(p).exists():
            continue  # in place, no claim on it
        held = _hold(_lock(p))
        if held is None:
            continue  # a live writer's
        fd, created = held
        committed = os.pread(fd, len(_COMMITTING), 0) == _COMMITTING
        if p.exists():
            if created or committed or not staged(p).exists():
                # in place (meanwhile, or by a writer that died after its commit): not
                # ours; what the writer's claim left beside it goes
                if not created and (not staged(p).exists() or staged(p).stat().st_size == 0):
                    staged(p).unlink(missing_ok=True)
                _unlink_and_close(_lock(p), fd)
                continue
            for f in (p, *also(p)):  # written in place by a writer killed before its row
                f.unlink(missing_ok=True)
        elif committed:
            os.close(fd)  # a row names it, its file not in place yet: `settle` moves it
            continue
        try:
            os.close(os.open(staged(p), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            if created:  # staged by a version without lock files: leave it be
                _unlink_and_close(_lock(p), fd)
                continue
            os.truncate(staged(p), 0)  # its writer died: the name and the file are ours
        os.ftruncate(fd, 0)
        return Claim(p, fd)
    raise AssertionError("unreachable: the candidates never end")


def _unlink_and_close(lock: Path, fd: int) -> None:
    lock.unlink(missing_ok=True)
    os.close(fd)


def settle(dest: Path, source: Path | None = None) -> bool:
    """For a database whose row names `dest` while `dest` is missing: its writer was
    killed between the commit and the rename. Move `source` (the staged file by default)
    into place and drop the claim; True if moved. False, touching nothing, when `dest`
    is in place, `source` is missing or empty, or the writer is still at work."""
    source = source or staged(dest)
    if dest.exists() or not source.exists() or source.stat().st_size == 0:
        return False
    held = _hold(_lock(dest))  # also for a claim of a version without lock files
    if held is None:
        return False
    source.replace(dest)
    staged(dest).unlink(missing_ok=True)
    _unlink_and_close(_lock(dest), held[0])
    return True


def scratch_path(dest: Path, kind: str) -> Path:
    """A hidden file beside `dest` that only this process writes (its host and pid in the
    name; the suffix kept, for the libraries that choose a format by it)."""
    tag = f"{socket.gethostname()}-{os.getpid()}"
    return dest.with_name(f".{dest.name}.{tag}.{kind}{dest.suffix}")


@contextmanager
def replaced_whole(dest: Path) -> Iterator[Path]:
    """A scratch path to write `dest` to: renamed to `dest` when the block ends, removed
    when it raises (an error, a Ctrl-C), so `dest` is whole or as it was, never half
    written. Scratch files of writers of `dest` that died on this machine (SIGKILL: no
    clean-up ran) are removed first; those of live processes and of other machines
    stay."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep(dest)
    partial = scratch_path(dest, "partial")
    try:
        yield partial
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def _sweep(dest: Path) -> None:
    # a scratch GeoPackage (SQLite) may have its journal beside it
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.(.+)-(\d+)\.[a-z]+"
                         rf"{re.escape(dest.suffix)}(-journal|-wal|-shm)?")
    host = socket.gethostname()
    for f in dest.parent.glob(f".{dest.name}.*"):
        m = pattern.fullmatch(f.name)
        if m and m[1] == host and not pid_alive(int(m[2])):
            f.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """A process of this machine with that pid exists (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def ard_dir() -> Path:
    return workspace() / "ard"


def models_dir() -> Path:
    return workspace() / "models"


def exports_dir() -> Path:
    return workspace() / "exports"


EXPORT_OWNER = ".database"  # in a session's export folder: the database file it came from


def session_exports(session_id: str, database: str | None,
                    copy_of: str | None = None) -> Path:
    """A session's default export folder, `exports/<session>`, made. A copy of a database
    file (`cp`) holds its original's sessions under the same ids, so each folder names
    the database it was written from (`.database`): a folder of another database file
    that still exists is left alone and the copy writes `exports/<session>-2` (-3...).
    A folder already this database's is reused; one whose database is gone (moved,
    deleted) is taken over. One that names none (written before 2026-12-06) is taken
    over too, unless this database is a copy of `copy_of` (`Store.copied_from`), whose
    it then is. `database` None (a server: no copies) is always `exports/<session>`."""
    base = exports_dir() / session_id
    if database is None:
        base.mkdir(parents=True, exist_ok=True)
        return base
    folders = [base] + sorted(
        (f for f in base.parent.glob(f"{session_id}-*")
         if re.fullmatch(rf"{re.escape(session_id)}-\d+", f.name)),
        key=lambda f: int(f.name.rsplit("-", 1)[1]))

    def owner(folder: Path) -> str | None:
        try:
            return (folder / EXPORT_OWNER).read_text(encoding="utf-8").strip() or None
        except OSError:  # none named: an older export, the original's if this is a copy
            return copy_of if folder.exists() else None

    def ours(path: str | None) -> bool:
        try:
            return path is not None and os.path.samefile(path, database)
        except OSError:
            return False

    mine = next((f for f in folders if ours(owner(f))), None)
    if mine is None:
        free = (f for f in folders if not (owner(f) and os.path.exists(owner(f))))
        mine = next(free, None) or base.with_name(f"{session_id}-{_next_number(folders)}")
    mine.mkdir(parents=True, exist_ok=True)
    (mine / EXPORT_OWNER).write_text(database + "\n", encoding="utf-8")
    return mine


def _next_number(folders: list[Path]) -> int:
    numbers = [int(f.name.rsplit("-", 1)[1]) for f in folders[1:]]
    return max(numbers, default=1) + 1


def layers_dir() -> Path:
    return workspace() / "layers"
