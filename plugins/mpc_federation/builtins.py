"""The built-in programs, Spark jobs and federation specs (the project's ``include/`` folder), found
by name in a cloned project and in an installed distribution alike.

    clone        PROJECT/include/{programs,jobs,federations}/
    installed    site-packages/mpc_federation/_builtins/{programs,jobs,federations}/
                 (the wheel maps include/ to the package ``mpc_federation._builtins``, pyproject.toml)

Both are real files on disk: spark-submit and the MPyC subprocess take paths, so a zipped install
is not supported. A spec names one with ``builtin:<name>`` (mpc_federation/spec_checks.py, spec_file).
"""

from __future__ import annotations

from pathlib import Path

# kind -> (folder, file suffix)
KINDS: dict[str, tuple[str, str]] = {
    "program": ("programs", ".py"),
    "job": ("jobs", ".py"),
    "federation": ("federations", ".yaml"),
}
PREFIX = "builtin:"


def builtins_root() -> Path:
    """The folder holding programs/, jobs/ and federations/: the installed package data when it
    exists, else the cloned project's include/."""
    here = Path(__file__).resolve().parent
    installed = here / "_builtins"
    return installed if installed.is_dir() else here.parents[1] / "include"


def builtin_dir(kind: str) -> Path:
    """The folder of the built-ins of ``kind``.

    :param kind: ``program``, ``job`` or ``federation``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of built-in {kind!r} (known: {', '.join(KINDS)})")
    return builtins_root() / KINDS[kind][0]


def builtin_names(kind: str) -> list[str]:
    """The names of the built-ins of ``kind``, sorted (``mpc_job``-style helper modules included)."""
    suffix = KINDS[kind][1] if kind in KINDS else ""
    folder = builtin_dir(kind)
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}") if not p.name.startswith("_"))


def builtin_path(kind: str, name: str) -> Path:
    """The file of the built-in ``name`` of ``kind``; LookupError naming the known ones if there is none.

    :param kind: ``program``, ``job`` or ``federation``.
    :param name: the file name without its suffix, e.g. ``hhi`` or ``taxi_revenue``.
    """
    folder = builtin_dir(kind)
    path = folder / f"{name}{KINDS[kind][1]}"
    if not name or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        raise LookupError(f"no built-in {kind} {name!r} (known: {', '.join(builtin_names(kind)) or 'none'})")
    return path
