"""How a search ends when it is stopped, and who holds a search's name while it runs.

    @guarded                      # on run_search and run_nested: the name is held, signals caught
    def run_search(cfg, ...): ...

**Clean endings.** While a guarded search runs, SIGINT (Ctrl-C) and SIGTERM stop it alike.
Inside Tune's loop the first signal asks Tune to stop (Tune's own SIGUSR1 path: its trials are
stopped and its experiment state saved once more, so `--resume` continues from the last
finished fold); a second signal, or a stop that takes longer than STOP_GRACE_S, stops at once.
Elsewhere the signal stops at once, except once the champion's version is being registered
(`finishing`): from there the search finishes. A stop raises SearchInterrupted (a
KeyboardInterrupt, so no `except Exception` takes it for a failure): the driver skips its
honest estimates, refit and registration and ends its MLflow runs KILLED on the way out; the
outermost guard then stops a local Ray the search started (never a cluster it joined), and
`tsfmicro search` prints how to resume as its last line and exits 128 + the signal (130,
143). The inner searches of a nested search share its guard.

**A held name.** A search holds `<storage>/<name>.lock` while it runs: created with
O_CREAT|O_EXCL (atomic on local disks and NFS), it records the host, pid, the process's start
and the time. Another search by that name (a new one or a `--resume`) refuses at once with a
ConfigError naming the holder. A crash releases it: on the same machine (same host name, boot
and pid namespace) the lock is stale once its pid is gone (or reused by another process); for
a driver on another host, a thread refreshes the file's mtime every HEARTBEAT_S and the lock
is stale when the mtime is older than STALE_S (compared with the storage's own clock, read
from a probe file, so the hosts' clocks need not agree). A stale lock is taken over.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from search.config import DEFAULT_STORAGE
from tsfmicro.errors import ConfigError

STOP_GRACE_S = 60.0  # a graceful stop of Tune's loop that takes longer is forced
HEARTBEAT_S = 10.0  # how often a held lock's mtime is refreshed
STALE_S = 90.0  # a lock of another host whose mtime is older than this is stale
LOCK_SUFFIX = ".lock"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


# ---- clean endings -----------------------------------------------------------------------------


class SearchInterrupted(KeyboardInterrupt):
    """A search stopped by a signal. `exit_code` is 128 + the signal; `resume_command` the
    command that continues it.

    A KeyboardInterrupt: Ray's blocking calls (ray.get, ray.wait) run signal handlers and
    turn a KeyboardInterrupt raised there into a plain one (anything else into a
    SystemError), so the outermost guard turns whatever KeyboardInterrupt comes out back
    into this, with the signal it recorded."""

    def __init__(self, signum: int, name: str, storage_path: str) -> None:
        self.signum = signum
        self.name = name
        self.storage_path = storage_path
        self.exit_code = 128 + signum
        super().__init__(f"search {name} stopped by {signal.Signals(signum).name}")

    @property
    def resume_command(self) -> str:
        return resume_command(self.name, self.storage_path)

    def lines(self, resumable: bool = True) -> list[str]:
        """What `tsfmicro search` prints last: what happened, then how to resume (or, for a
        search stopped before it saved its settings, that it has to start again)."""
        said = (
            f"search {self.name} stopped by {signal.Signals(self.signum).name} before it "
            "finished: nothing refitted or registered, its open MLflow runs ended KILLED"
        )
        if not resumable:
            return [said, "it stopped before saving its settings: run the same command again"]
        return [said, f"resume it with: {self.resume_command}"]


def resume_command(name: str, storage_path: str) -> str:
    storage = (
        "" if storage_path == DEFAULT_STORAGE else f" --storage-path {Path(storage_path).resolve()}"
    )
    return f"tsfmicro search --resume {name}{storage}"


def _say(message: str) -> None:
    """Print from a signal handler: one unbuffered write (a buffered print could re-enter).
    On a terminal the line is cleared first: it may hold the live progress line
    (search.progress), which is drawn again below the message."""
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stderr.fileno()
        clear = "\r\x1b[K" if os.isatty(fd) else ""
        os.write(fd, (clear + message + "\n").encode())


def _tune_stops_on_sigusr1() -> bool:
    """Whether Tune's loop is listening: it installs a Python handler for SIGUSR1 that asks it
    to stop (ray.tune.tune._setup_signal_catching). Without one, SIGUSR1 would kill us."""
    sigusr1 = getattr(signal, "SIGUSR1", None)
    return sigusr1 is not None and callable(signal.getsignal(sigusr1))


@dataclass
class Guard:
    """The signal handling of one search process (see the module docstring)."""

    name: str
    storage_path: str
    grace_s: float = STOP_GRACE_S
    signum: int | None = None  # the first signal received
    raised: bool = False  # SearchInterrupted was raised: further signals only say so
    finishing: bool = False  # the champion is being registered: the search ends normally
    in_tune: bool = False
    _previous: dict[int, Any] = field(default_factory=dict)
    _at_interrupt: list[Callable[[], Any]] = field(default_factory=list)
    _timer: threading.Timer | None = None

    def install(self) -> None:
        for signum in SIGNALS:
            self._previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self.handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def interrupted(self) -> SearchInterrupted:
        self.raised = True
        return SearchInterrupted(self.signum or signal.SIGINT, self.name, self.storage_path)

    def handle(self, signum: int, frame: Any) -> None:
        title = signal.Signals(signum).name
        if self.raised:
            _say(f"{title}: search {self.name} is already stopping (closing its runs)")
            return
        first = self.signum is None
        if first:
            self.signum = signum
        if self.finishing:
            _say(f"{title}: search {self.name} is registering its champion; it ends in a moment")
            return
        if first and self.in_tune and _tune_stops_on_sigusr1():
            _say(
                f"{title}: stopping search {self.name}: its trials stop and Tune saves their "
                f"state (at most {self.grace_s:.0f} s); nothing is refitted or registered. "
                f"{title} again stops at once."
            )
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune's loop ends at its next step
            self._timer = threading.Timer(self.grace_s, os.kill, (os.getpid(), signum))
            self._timer.daemon = True
            self._timer.start()
            return
        raise self.interrupted()

    def check(self) -> None:
        """Raise SearchInterrupted if a signal came (after Tune's loop stopped for it)."""
        if self.signum is not None and not self.raised:
            raise self.interrupted()

    @contextlib.contextmanager
    def tune_loop(self) -> Iterator[None]:
        """Around `tuner.fit()`: the first signal stops Tune's loop rather than breaking out of
        it. Tune is told to leave SIGINT to us (TUNE_DISABLE_SIGINT_HANDLER); its SIGUSR1
        handler, which stays installed after fit returns, is removed again afterwards."""
        sigusr1 = getattr(signal, "SIGUSR1", None)
        previous_usr1 = signal.getsignal(sigusr1) if sigusr1 is not None else None
        previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.in_tune = True
        try:
            yield
        finally:
            self.in_tune = False
            if self._timer is not None:
                self._timer.cancel()
            if previous_env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env
            if sigusr1 is not None and previous_usr1 is not None:
                signal.signal(sigusr1, previous_usr1)
            for signum in SIGNALS:  # Tune may have put its own back
                signal.signal(signum, self.handle)

    def at_interrupt(self, action: Callable[[], Any]) -> None:
        """Run `action` when the search is interrupted, after its runs are closed."""
        self._at_interrupt.append(action)

    def run_interrupt_actions(self) -> None:
        for action in reversed(self._at_interrupt):
            try:
                action()
            except Exception as exc:  # the stop goes on; say what did not
                _say(f"while stopping search {self.name}: {type(exc).__name__}: {exc}")


_ACTIVE: list[Guard] = []


def active() -> Guard | None:
    """The guard of the search this process runs (the outermost one), if any."""
    return _ACTIVE[0] if _ACTIVE else None


def reinstall() -> None:
    """Put the active guard's handlers back (ray.init installs a SIGTERM handler of its own)."""
    guard = active()
    if guard is not None and threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, guard.handle)


def at_interrupt(action: Callable[[], Any]) -> None:
    """Run `action` if the active search is interrupted (nothing when no search is guarded)."""
    guard = active()
    if guard is not None:
        guard.at_interrupt(action)


@contextlib.contextmanager
def interruptible(name: str, storage_path: str = DEFAULT_STORAGE) -> Iterator[Guard | None]:
    """Catch SIGINT and SIGTERM for a search (see the module docstring). Inside another
    guarded search the outer guard is shared. Off the main thread signals cannot be caught:
    yields None and changes nothing."""
    if _ACTIVE:
        yield _ACTIVE[0]
        return
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    guard = Guard(name, storage_path)
    _ACTIVE.append(guard)
    guard.install()
    try:
        yield guard
    except KeyboardInterrupt as exc:
        guard.raised = True
        guard.run_interrupt_actions()
        if isinstance(exc, SearchInterrupted):
            raise
        raise SearchInterrupted(guard.signum or signal.SIGINT, name, storage_path) from exc
    finally:
        if guard._timer is not None:
            guard._timer.cancel()
        guard.restore()
        _ACTIVE.remove(guard)


def finishing() -> None:
    """From here on the active search finishes whatever comes: its champion is being
    registered (a version and its alias are written together or not at all)."""
    guard = active()
    if guard is not None:
        guard.finishing = True


def check_interrupted() -> None:
    """Raise SearchInterrupted if the active search received a signal."""
    guard = active()
    if guard is not None:
        guard.check()


@contextlib.contextmanager
def tune_loop() -> Iterator[None]:
    """`Guard.tune_loop` of the active guard, or nothing."""
    guard = active()
    if guard is None:
        yield
        return
    with guard.tune_loop():
        yield


# ---- a held name ------------------------------------------------------------------------------


def lock_path(storage_path: str, name: str) -> Path:
    return Path(storage_path).resolve() / f"{name}{LOCK_SUFFIX}"


def _read(path: Path) -> str:
    return path.read_text() if path.stat().st_size < 1_000_000 else ""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): a
    reused pid has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_machine() -> dict[str, Any]:
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid_ns": _pid_namespace()}


def holder_info(name: str) -> dict[str, Any]:
    """What a lock file records about the process that holds it."""
    pid = os.getpid()
    return {
        "search": name,
        **this_machine(),
        "pid": pid,
        "process_start": _process_start(pid),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
        "heartbeat_s": HEARTBEAT_S,
        "stale_s": STALE_S,
    }


def _same_machine(info: dict[str, Any]) -> bool:
    here = this_machine()
    return info.get("host") == here["host"] and all(
        info.get(key) == here[key] for key in ("boot_id", "pid_ns") if info.get(key) and here[key]
    )


def _storage_now(folder: Path) -> float:
    """The storage's clock: the mtime of a probe file written there now (on NFS the server
    sets it), so that a lock's mtime is compared with a time of the same clock."""
    probe = folder / f".lock-clock-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        return probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def stale_reason(path: Path, text: str, mtime: float) -> str | None:
    """Why the lock at `path` (its content and mtime) no longer holds, or None if it does."""
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):  # being written right now, or garbage
        age = _storage_now(path.parent) - mtime
        return f"unreadable and {age:.0f} s old" if age > STALE_S else None
    pid = int(info.get("pid") or 0)
    if _same_machine(info) and pid:
        if not _pid_alive(pid):
            return f"pid {pid} on {info.get('host')} is not running"
        start = info.get("process_start")
        if start and _process_start(pid) not in (None, start):
            return f"pid {pid} on {info.get('host')} is another process now"
        return None
    age = _storage_now(path.parent) - mtime
    if age > float(info.get("stale_s") or STALE_S):
        return f"its heartbeat from {info.get('host')} (pid {pid}) stopped {age:.0f} s ago"
    return None


def describe(info: dict[str, Any]) -> str:
    return f"pid {info.get('pid')} on host {info.get('host')}, since {info.get('since')}"


class NameHeld(ConfigError):
    """Another running search holds this search's name."""


def _held(name: str, storage_path: str, path: Path, text: str) -> NameHeld:
    try:
        holder = json.loads(text)
    except ValueError:
        holder = {}
    if not isinstance(holder, dict):
        holder = {}
    return NameHeld(
        f"search {name!r} is running ({describe(holder)}; lock {path}): a second search by "
        "that name, or a --resume of it, would corrupt it. Wait until it ends, or stop it "
        f"(Ctrl-C, or kill -INT {holder.get('pid')} on {holder.get('host')}), then: "
        f"{resume_command(name, storage_path)}"
    )


def refuse_if_held(storage_path: str, name: str) -> None:
    """NameHeld if a live search holds the name (a look only: nothing is taken, a stale lock
    is left for `acquire`). Lets a command refuse before its heavy imports."""
    path = lock_path(storage_path, name)
    with _HELD_LOCK:
        if path in _HELD:
            return
    try:
        text, mtime = _read(path), path.stat().st_mtime
    except OSError:
        return
    if stale_reason(path, text, mtime) is None:
        raise _held(name, storage_path, path, text)


@dataclass
class _Held:
    path: Path
    token: str
    count: int = 1
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


_HELD: dict[Path, _Held] = {}
_HELD_LOCK = threading.Lock()


def _heartbeat(held: _Held) -> None:
    while not held.stop.wait(HEARTBEAT_S):
        try:
            if json.loads(_read(held.path)).get("token") != held.token:
                _say(f"warning: the lock {held.path} was taken over by another search")
                return
            os.utime(held.path)
        except (OSError, ValueError):
            pass


def _create(path: Path, info: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(info, indent=1))
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _take_over(path: Path, seen: str) -> None:
    """Remove the stale lock whose content was `seen`, unless someone replaced it meanwhile
    (then it is put back). Moved aside first: only one taker can move a given file."""
    aside = path.with_name(f"{path.name}.stale-{socket.gethostname()}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        if _read(aside) != seen:  # a live holder's lock, created after we looked: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(aside)


def acquire(storage_path: str, name: str, say: Callable[[str], Any] | None = None) -> Path:
    """Hold the search name (re-entrant within a process); NameHeld when a live search holds
    it. Returns the lock's path."""
    path = lock_path(storage_path, name)
    with _HELD_LOCK:
        if path in _HELD:
            _HELD[path].count += 1
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"search {name}: cannot create its storage folder: {exc}") from exc
    info = holder_info(name)
    for _ in range(10):
        try:
            if _create(path, info):
                break
            try:
                text, mtime = _read(path), path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            reason = stale_reason(path, text, mtime)
            if reason is None:
                raise _held(name, storage_path, path, text)
            (say or _say)(f"search {name}: taking over a stale lock ({reason}): {path}")
            _take_over(path, text)
        except NameHeld:
            raise
        except OSError as exc:
            raise ConfigError(f"search {name}: cannot write its lock {path}: {exc}") from exc
    else:
        raise ConfigError(f"search {name}: could not take its lock {path} (contended)")
    held = _Held(path, info["token"])
    held.thread = threading.Thread(target=_heartbeat, args=(held,), daemon=True,
                                   name=f"lock-{name}")  # fmt: skip
    held.thread.start()
    with _HELD_LOCK:
        _HELD[path] = held
    return path


def release(path: Path) -> None:
    """Let the name go (the last of re-entrant holds): the file is removed if it is still
    ours."""
    with _HELD_LOCK:
        held = _HELD.get(path)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _HELD[path]
    held.stop.set()
    try:
        if json.loads(_read(path)).get("token") == held.token:
            path.unlink()
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def hold_name(storage_path: str, name: str) -> Iterator[Path]:
    path = acquire(storage_path, name)
    try:
        yield path
    finally:
        release(path)


def guarded(run: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a search driver whose first argument is its SearchConfig: its name is held
    and SIGINT/SIGTERM end it cleanly (the module docstring)."""

    @functools.wraps(run)
    def wrapper(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        with hold_name(cfg.storage_path, cfg.name), interruptible(cfg.name, cfg.storage_path):
            return run(cfg, *args, **kwargs)

    return wrapper
