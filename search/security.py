"""What keeps a search closed to other people: the local Ray it starts, and the state it resumes.

- `loopback_node()`: ray.init inside it starts a local Ray whose every server (GCS, raylet,
  object manager, workers, agents, metrics) listens on 127.0.0.1 only. On Linux Ray replaces a
  loopback node address by the host's outward one (`ray.init(_node_ip_address="127.0.0.1")`
  and `ray start --node-ip-address 127.0.0.1` alike) and then binds its gRPC servers to every
  interface; it keeps a loopback address, and binds loopback only, where it treats the machine
  as a single-node Ray (`ray._private.ray_constants.ENABLE_RAY_CLUSTER` false, what
  `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` sets at import). That flag is read when the node's
  address is chosen, so it is switched off for ray.init only and restored afterwards.
- `local_ray_exposure()`: after ray.init, what the local Ray exposes (the address it listens
  on, whether token authentication is on and where the token is), as one line; an exposed Ray
  without authentication is an error. The token file Ray writes is made private to its owner.
- `check_resume_tree()`: `Tuner.restore` unpickles Tune's experiment state (tuner.pkl, the
  searcher's state, pickled values inside experiment_state-*.json), so a resume first checks
  that every file and folder of the search's folder belongs to the user and that no other user
  can write them or the folders leading to it.

docs/security.md has the whole trust boundary.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tsfmicro.errors import ConfigError

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


@contextmanager
def loopback_node() -> Iterator[None]:
    """A local ray.init() inside this block starts a node on 127.0.0.1 that listens there only."""
    from ray._private import ray_constants

    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_location() -> str:
    """Where Ray reads its token from, in Ray's order of precedence."""
    if os.environ.get(TOKEN_ENV):
        return f"${TOKEN_ENV}"
    if os.environ.get(TOKEN_PATH_ENV):
        return os.environ[TOKEN_PATH_ENV]
    return str(Path.home() / ".ray" / "auth_token")


def make_private(path: Path) -> bool:
    """chmod 600 a file of ours that others can read or write; True when it was changed."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid != os.geteuid() or not st.st_mode & 0o077:
        return False
    path.chmod(stat.S_IMODE(st.st_mode) & 0o700)
    return True


def local_ray_exposure(gcs_address: str) -> str:
    """One line on who can reach the local Ray at `gcs_address` (the node ray.init started).
    A Ray that listens beyond loopback with token authentication off is a ConfigError: anyone
    who reaches the machine could run code as the user."""
    host = gcs_address.rsplit(":", 1)[0]
    token = os.environ.get(AUTH_MODE_ENV, "disabled").lower() == "token"
    if token:
        where = token_location()
        private = not where.startswith("$") and make_private(Path(where))
        auth = (
            f"token authentication on (token in {where}"
            f"{', now readable by you only' if private else ''})"
        )
    else:
        auth = f"token authentication off ({AUTH_MODE_ENV}={os.environ.get(AUTH_MODE_ENV)})"
    if is_loopback(host):
        return f"local Ray at {gcs_address}: listens on loopback only; {auth}"
    if not token:
        raise ConfigError(
            f"the local Ray at {gcs_address} listens beyond loopback with {auth}: anyone who "
            f"can reach this machine could run code as you. Unset {AUTH_MODE_ENV} (or set it "
            "to token) and search again"
        )
    return (
        f"local Ray at {gcs_address}: listens on every interface (Ray kept no loopback "
        f"address); {auth}: the token is what keeps others out"
    )


# Resuming: who may have written the state that Tune unpickles.


def _private_group(gid: int, uid: int) -> bool:
    """A user private group (the user's own, of the same name, with no other member): group
    write access to it is the user's alone (what a umask of 002 gives on such systems)."""
    try:
        user, group = pwd.getpwuid(uid), grp.getgrgid(gid)
    except KeyError:
        return False
    return (
        group.gr_gid == user.pw_gid
        and group.gr_name == user.pw_name
        and set(group.gr_mem) <= {user.pw_name}
    )


def _problem(
    path: Path, st: os.stat_result, owners: tuple[int, ...], uid: int, sticky_ok: bool = False
) -> str | None:
    """Why others could have written `path` (or None): an owner not in `owners`, or write
    access for the group (unless it is the user's private group) or for everyone. With
    `sticky_ok`, a folder with the sticky bit (such as /tmp) passes: others can add entries to
    it but cannot rename or replace ours."""
    if st.st_uid not in owners:
        try:
            name = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            name = "unknown"
        return f"{path} belongs to uid {st.st_uid} ({name}), not to you (uid {uid})"
    mode = stat.S_IMODE(st.st_mode)
    if sticky_ok and stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX:
        return None
    if mode & stat.S_IWOTH:
        return f"{path} is writable by every user (mode {mode:04o})"
    if mode & stat.S_IWGRP and not _private_group(st.st_gid, uid):
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        return f"{path} is writable by the group {group} (mode {mode:04o})"
    return None


def resume_tree_problems(folder: Path, limit: int = 5) -> list[str]:
    """Up to `limit` reasons why the files under `folder`, or the folders leading to it, may
    hold what another user wrote (empty when all is the user's own)."""
    uid = os.geteuid()
    problems: list[str] = []
    folder = folder.resolve()
    for parent in reversed(folder.parents):  # / first: owned by the user or root
        problem = _problem(parent, parent.stat(), (uid, 0), uid, sticky_ok=True)
        if problem:
            problems.append(problem)
    for root, dirs, files in os.walk(folder):
        for name in [None, *sorted(dirs), *sorted(files)]:
            path = Path(root) if name is None else Path(root) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = path.stat()
                except OSError:
                    problems.append(f"{path} is a dangling symbolic link")
                    continue
                if stat.S_ISDIR(target.st_mode):
                    problems.append(f"{path} is a symbolic link to a folder")
                    continue
                problem = _problem(path, st, (uid,), uid) if st.st_uid != uid else None
                problem = problem or _problem(path.resolve(), target, (uid,), uid)
            else:
                problem = _problem(path, st, (uid,), uid)
            if problem:
                problems.append(problem)
            if len(problems) >= limit:
                return problems
    return problems


def check_resume_tree(name: str, folder: Path) -> None:
    """Refuse (ConfigError naming the file) to resume search `name` from `folder` if another
    user could have written any of it: resuming unpickles Tune's state from there."""
    problems = resume_tree_problems(folder)
    if problems:
        raise ConfigError(
            f"refusing to resume {name!r}: {problems[0]}. Resuming unpickles Tune's state "
            f"from {folder}, so a file another user can write could run their code as you. "
            "If you trust its content, take it back (chown it to yourself; chmod go-w) and "
            "resume again; otherwise start a new search"
            + (f" (also: {'; '.join(problems[1:])})" if len(problems) > 1 else "")
        )


def checked_local_ray(say=None) -> str:
    """After a local ray.init: the line of `local_ray_exposure`, given to `say`; an exposed Ray
    without authentication is shut down before the ConfigError is raised."""
    import ray

    try:
        note = local_ray_exposure(ray.get_runtime_context().gcs_address)
    except ConfigError:
        ray.shutdown()
        raise
    if say is not None:
        say(note)
    return note
