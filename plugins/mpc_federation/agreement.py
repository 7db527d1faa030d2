"""What the compute parties must agree on inside the MPC before any share is used.

Each compute party's MPyC process sends its *view* (a JSON-able dict: what it saw and what it
will do) to every other compute party, and every party checks all views with ``check``. A party
whose view differs refuses, so an honest compute party's view is enforced: the bucket's operator
cannot steer one compute party into a computation the others would not do.

The view of a compute party (``stages._compute_attempt`` builds it)::

    {"attempt": n,
     "roster": [input parties of the leader's signed roster],
     "roster_at": the roster's signed created_at,
     "seen": [input parties off the roster whose verified done marker this party saw, signed
              at or before roster_at: they shared in time (the markers of roster parties are
              not fetched: their shares show they shared)],
     "sharings": {input party: the id of the sharing this party's share belongs to},
     "ledger": {"fixed_roster": [roster fixed by released months] or None,
                "withheld": [[dimension, label], ...]}}

Rules: every key but ``seen`` must be the same in all views (the ledger verdict first, with its
own reason); a roster that differs from the ledger's fixed roster is refused; a roster that leaves
out a party any compute party saw in time is refused, unless the ledger fixed the roster; shares
of different sharings of one input party are refused (an input party that shared again, e.g. after
its done marker could not be read, and the bucket serving some compute parties its older shares:
mixed, they would recombine to no value of the party's).
"""

from __future__ import annotations

from typing import Any


class AgreementError(RuntimeError):
    """The compute parties' views disagree: the attempt is refused, with the reason."""


def _names(parties: Any) -> str:
    return f"[{', '.join(parties)}]" if parties is not None else "none"


def check(views: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse unless the compute parties' views agree and the roster keeps every party seen in time.

    :param views: the view of each compute party, in MPyC party order.
    :param names: the compute parties' ids, in the same order (for the reason).
    """
    first = views[0]
    ledgers = [v.get("ledger") for v in views]
    if any(ledger != ledgers[0] for ledger in ledgers):
        told = "; ".join(
            f"{names[i]}: fixed roster {_names((ledger or {}).get('fixed_roster'))}, withheld "
            f"{', '.join('/'.join(p) for p in (ledger or {}).get('withheld', [])) or 'none'}"
            for i, ledger in enumerate(ledgers)
        )
        raise AgreementError(
            f"compute parties disagree on the disclosure ledger ({told}): the bucket shows "
            "them different ledger records"
        )
    roster = first.get("roster")
    fixed = (ledgers[0] or {}).get("fixed_roster")
    if fixed is not None and roster is not None and sorted(fixed) != sorted(roster):
        raise AgreementError(
            f"roster {_names(roster)} of attempt {first.get('attempt')} differs from "
            f"{_names(fixed)}, over which the ledger says months of this period were released"
        )
    if roster is not None and fixed is None:
        for i, view in enumerate(views):
            left_out = [p for p in view.get("seen", []) if p not in roster]
            if left_out:
                raise AgreementError(
                    f"roster {_names(roster)} of attempt {first.get('attempt')} leaves out {', '.join(left_out)}, "
                    f"whose shares {names[i]} saw before the roster was fixed"
                )
    sharings = [view.get("sharings") or {} for view in views]
    common = set.intersection(*(set(s) for s in sharings))  # parties in every view (rosters agree below)
    mixed = sorted(p for p in common if len({s[p] for s in sharings}) > 1)
    if mixed:
        raise AgreementError(
            f"compute parties hold shares of different sharings of {', '.join(mixed)} (the bucket served "
            "some of them an older sharing of the same run)"
        )
    rest = [{k: v for k, v in view.items() if k != "seen"} for view in views]
    differ = [names[i] for i, view in enumerate(rest) if view != rest[0]]
    if differ:
        keys = sorted({k for view in rest for k in view if any(v.get(k) != rest[0].get(k) for v in rest)})
        raise AgreementError(f"compute parties {', '.join(differ)} disagree with {names[0]} on {', '.join(keys)}")
