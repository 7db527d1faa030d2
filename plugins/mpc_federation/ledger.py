"""The disclosure ledger: for one computation and one data unit, results are released once, over
one roster.

Why: two results over two rosters that differ by one firm give that firm's data away (the HHI of
[a, b, c, d] and of [a, b, c, d, e] over the same months determine e's market share; two sums
give e's total). So the compute parties remember what they released and refuse to release a
data unit again over anything else.

Data units of a run (its period is the spec's months for the run's date, ``first..last``):

    market = <month>      the unit is the month itself, e.g. ``2024-02``
    market = all          ``all@<first>..<last>``
    <dim> = <label>       ``<dim>=<label>@<first>..<last>`` (e.g. ``level=L1@2024-03..2024-03``)
    an undimensioned output <name>: ``<name>@<first>..<last>``

A unit is named to the worker (``MPCJob.withheld``) as the pair ``[dimension, label]``
(``[None, name]`` for an undimensioned output, as the worker and ``decode`` match cells).

Records. Before publishing output shares each compute party writes its signed record (envelope
kind ``ledger``, role ``compute``, the run and attempt signed in its header) to

    <prefix>/<computation>/ledger/released/<writer>/<run>-attempt-<n>

(the writer is the fifth segment, as everywhere in the bucket) and keeps the same signed bytes
as a private copy in its own state, ``<ledger dir>/<computation>/<run>-attempt-<n>``. The
payload::

    {"format": "mpc-ledger/1", "computation": ..., "run": ..., "attempt": n, "writer": ...,
     "roster": [...], "months": [...], "period": "2024-01..2024-03",
     "units": [units released], "withheld": [[dim, label], ...],
     "inputs": {input-share key: sha256 of the object this compute party consumed}}

Rules, checked by every compute party over its private copies and every compute party's
verified bucket records before it computes, and by the leader when it fixes the roster:

(a) every month of this run's period that a record covers is computed over exactly that
    record's roster (the leader picks it; parties not on it are left out with the reason; if one
    of its parties has not shared, the attempt is refused naming the month, the released roster
    and the missing party);
(b) a unit already released in another run, or in another attempt of this run over another
    roster or other input objects, is withheld: zero inside the MPC, marked withheld for the
    recipient. A retry of the same run over the same roster and the identical input objects may
    release again (the same values);
(c) when every unit of the run is withheld there is nothing to release: the compute task and
    the recipient's wait skip.

Each compute party's verdict (the fixed roster, the withheld units) is part of its agreement view
(``agreement.py``): if the bucket's operator shows different records to different compute
parties, their views differ and the attempt is refused inside the MPC.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_federation.envelope import IntegrityError
from mpc_federation.layout import ledger_root, parse_ledger_key
from mpc_federation.store import concurrently

log = logging.getLogger(__name__)
KIND = "ledger"
FORMAT = "mpc-ledger/1"


class LedgerError(RuntimeError):
    """The ledger forbids this computation (a released roster cannot be met); the reason says why."""


class NothingToRelease(LedgerError):
    """Every unit of the run was released before: nothing is computed, the tasks skip."""


# -- units ---------------------------------------------------------------------------------------------------
def period(dims: dict[str, list[str]]) -> tuple[list[str], str]:
    months = [m for m in dims["market"] if m != "all"]
    return months, f"{months[0]}..{months[-1]}" if months else ""


def units(program: Any, dims: dict[str, list[str]]) -> list[tuple[str | None, str, str]]:
    """(dimension, label, unit) of every data unit the program's outputs reveal, in output order."""
    months, span = period(dims)
    out: dict[tuple[str | None, str, str], None] = {}  # ordered, each unit once (outputs share a dimension)
    pairs: list[tuple[str | None, str, str]]
    for output in program.outputs:
        if output.dim is None:
            pairs = [(None, output.name, f"{output.name}@{span}")]
        elif output.dim == "market":
            pairs = [("market", label, f"all@{span}" if label == "all" else label) for label in dims["market"]]
        else:
            pairs = [(output.dim, label, f"{output.dim}={label}@{span}") for label in dims[output.dim]]
        out.update(dict.fromkeys(pairs))
    return list(out)


def cells(withheld: list) -> set[tuple]:
    """The withheld ``[dimension, label]`` pairs as a set of tuples, to look cells up in."""
    return {tuple(pair) for pair in withheld}


# -- records -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    writer: str
    run: str
    attempt: int
    roster: tuple[str, ...]
    months: tuple[str, ...]
    units: tuple[str, ...]
    inputs: dict = field(default_factory=dict, hash=False, compare=False)
    where: str = "bucket"

    @property
    def name(self) -> str:
        return f"run {self.run} attempt {self.attempt}"


def _record(payload: Any, writer: str, run: str, attempt: int, where: str) -> Record:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise IntegrityError("not an mpc-ledger/1 record")
    if payload.get("run") != run or payload.get("attempt") != attempt or payload.get("writer") != writer:
        raise IntegrityError("the record's run, attempt or writer differ from its signed header")
    return Record(
        writer,
        run,
        attempt,
        tuple(payload["roster"]),
        tuple(payload["months"]),
        tuple(payload["units"]),
        dict(payload.get("inputs") or {}),
        where,
    )


def bucket_records(spec: Any, store: Any, reader_for: Callable[[str], Any]) -> list[Record]:
    """Every compute party's verified ledger record in the bucket. A record that does not verify
    (or is not a compute party's) is ignored with a warning naming it."""
    computes = {c.id for c in spec.compute_parties}
    wanted = []
    for key in sorted(store.list(ledger_root(spec) + "/")):
        parsed = parse_ledger_key(spec, key)
        if parsed is None or parsed[0] not in computes:
            log.warning("Ignoring %s in the ledger: not a compute party's ledger record", key)
            continue
        wanted.append((key, *parsed))
    for run in {run for _, _, run, _ in wanted}:
        reader_for(run)  # one reader per run, made here: the reads below run at once

    def read(item) -> Record | None:
        key, writer, run, attempt = item
        try:
            payload = reader_for(run).read(key, KIND, writer, attempt=attempt, any_spec=True)
            return None if payload is None else _record(payload, writer, run, attempt, "bucket")
        except (IntegrityError, KeyError, TypeError) as exc:
            log.warning("Ignoring ledger record %s: %s", key, exc)
            return None

    return [record for record in concurrently(read, wanted) if record is not None]  # a year of nights: hundreds


def private_dir(ledger_dir: str | Path, spec: Any):
    """This party's private ledger folder of ``spec``: a local path or an object-storage URI
    (``file://``, ``s3://``, ...; universal_pathlib, through fsspec)."""
    from upath import UPath

    return UPath(str(ledger_dir)) / spec.computation


def private_records(
    spec: Any, ledger_dir: str | Path | None, me: str, reader_for: Callable[[str], Any]
) -> list[Record]:
    """This compute party's own copies. One it cannot read stops the computation: an honest
    party's memory of what it released is not ignored."""
    if ledger_dir is None:
        return []
    folder = private_dir(ledger_dir, spec)
    out = []
    for path in sorted(folder.glob("*-attempt-*")) if folder.is_dir() else []:
        parsed = parse_ledger_key(spec, f"{ledger_root(spec)}/{me}/{path.name}")
        if parsed is None:
            continue
        _, run, attempt = parsed
        try:
            payload = reader_for(run).open(path.read_bytes(), str(path), KIND, me, attempt=attempt, any_spec=True)[1]
            out.append(_record(payload, me, run, attempt, "private"))
        except (OSError, IntegrityError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"this party's private ledger record {path} is unreadable ({exc}); "
                "refusing to compute until it is restored"
            ) from None
    return out


def all_records(private: list[Record], bucket: list[Record]) -> list[Record]:
    """Private copies and bucket records, one per (writer, run, attempt); the private copy wins."""
    out: dict[tuple, Record] = {}
    for record in [*bucket, *private]:
        out[(record.writer, record.run, record.attempt)] = record
    return sorted(out.values(), key=lambda r: (r.run, r.attempt, r.writer))


def write_private(ledger_dir: str | Path, spec: Any, run: str, attempt: int, blob: bytes):
    """Write one private copy: atomically on a local disk, in one PUT on an object store."""
    folder = private_dir(ledger_dir, spec)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run}-attempt-{attempt}"
    if isinstance(path, Path):  # a local folder: never a half-written record
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    else:
        path.write_bytes(blob)
    return path


def payload(
    spec: Any,
    run: str,
    attempt: int,
    writer: str,
    roster: list[str],
    dims: dict,
    released: list[str],
    withheld: list[list[str | None]],
    inputs: dict[str, str],
) -> dict:
    months, span = period(dims)
    return {
        "format": FORMAT,
        "computation": spec.computation,
        "run": run,
        "attempt": attempt,
        "writer": writer,
        "roster": list(roster),
        "months": months,
        "period": span,
        "units": released,
        "withheld": withheld,
        "inputs": inputs,
    }


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


# -- rules ------------------------------------------------------------------------------------------------------
def fixed_roster(
    records: list[Record], months: list[str], *, snapshot: bool = False
) -> tuple[list[str], Record, list[str]] | None:
    """Rule (a): the roster that released months of this period fixes it: (roster, the earliest
    record that fixed it, the months it covers). Refuses when records fix different rosters.

    :param snapshot: the spec's data are a snapshot (``FederationSpec.snapshot``): every run reads
        the same data whatever its months, so every earlier release covers this period, and the
        roster that first released anything stays (a roster change would difference one party's
        data out of two runs over nearly the same data)."""

    def covers(record: Record) -> set[str]:
        return set(record.months) if snapshot else set(record.months) & set(months)

    covering = [r for r in records if covers(r)]
    if not covering:
        return None
    first = covering[0]
    for other in covering[1:]:
        if sorted(other.roster) != sorted(first.roster):
            raise LedgerError(
                f"the ledger holds months {', '.join(sorted(covers(other)))} released over "
                f"[{', '.join(other.roster)}] in {other.name} and months {', '.join(sorted(covers(first)))} over "
                f"[{', '.join(first.roster)}] in {first.name}: no roster can be used for this period"
                + (
                    " (the data are a snapshot: every release covers them, so a snapshot released over two "
                    "rosters cannot release again; a new computation id starts a new ledger)"
                    if snapshot
                    else ""
                )
            )
    covered = sorted({m for r in covering for m in covers(r)})
    return list(first.roster), first, covered


def fixed_reason(fixed: tuple[list[str], Record, list[str]]) -> str:
    roster, record, covered = fixed
    span = covered[0] if len(covered) == 1 else f"{covered[0]}..{covered[-1]}"
    return f"the disclosure ledger fixed the roster of {span} to [{', '.join(roster)}] (released in {record.name})"


@dataclass
class Verdict:
    """What the ledger lets this attempt release."""

    fixed: list[str] | None
    withheld: list[list[str | None]]  # [dimension (None: a scalar output), label]
    reasons: dict[str, str]  # unit -> "released in run R attempt n"
    units: list[str]  # every unit of the run
    released: list[str]  # the units not withheld

    @property
    def nothing_to_release(self) -> bool:
        return not self.released

    def view(self) -> dict:
        """The part of the agreement view every compute party must share."""
        return {"fixed_roster": self.fixed, "withheld": self.withheld}

    def explain(self) -> str:
        earlier = sorted(set(self.reasons.values()))
        return f"every unit of this run ({', '.join(self.units)}) was {'; '.join(earlier)}"


def verdict(
    records: list[Record],
    program: Any,
    dims: dict,
    run: str,
    attempt: int,
    roster: list[str],
    current_sha: Callable[[str], str | None],
    *,
    snapshot: bool = False,
) -> Verdict:
    """Rules (a)-(c) for one attempt over ``roster``.

    :param current_sha: sha256 of an input-share object as it is in the bucket now (None if absent).
    :param snapshot: the spec's data are a snapshot (``fixed_roster``).
    """
    months, _ = period(dims)
    fixed = fixed_roster(records, months, snapshot=snapshot)
    all_units = units(program, dims)
    withheld, reasons = [], {}
    released_before = [(r, set(r.units)) for r in records]  # sets: thousands of units per record
    for dim, label, unit in all_units:
        for r, r_units in released_before:
            if unit not in r_units:
                continue
            if r.run != run:
                why = f"released in run {r.run}"
            elif r.attempt != attempt and sorted(r.roster) != sorted(roster):
                why = f"released in attempt {r.attempt} of this run over [{', '.join(r.roster)}]"
            elif r.attempt != attempt and any(current_sha(k) != v for k, v in sorted(r.inputs.items())):
                why = f"released in attempt {r.attempt} of this run over other input objects"
            else:
                continue
            withheld.append([dim, label])
            reasons[unit] = why
            break
    held = cells(withheld)
    released = [u for d, label, u in all_units if (d, label) not in held]
    return Verdict(fixed[0] if fixed else None, withheld, reasons, [u for _, _, u in all_units], released)


def record_blob_inputs(blobs: dict[str, bytes]) -> dict[str, str]:
    return {key: sha256(blob) for key, blob in sorted(blobs.items())}
