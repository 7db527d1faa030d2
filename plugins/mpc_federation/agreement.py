"""What the compute parties must agree on inside the MPC before any share is used.

Each compute party's MPyC process sends its *view* (a JSON-able dict: what it saw and what it
will do) to every other compute party, and every party checks all views with ``check``. A party
whose view differs refuses, so an honest compute party's view is enforced: the bucket's operator
cannot steer one compute party into a computation the others would not do.
"""

from __future__ import annotations

from typing import Any


class AgreementError(RuntimeError):
    """The compute parties' views disagree: the attempt is refused, with the reason."""


def check(views: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse unless every compute party's view is the same.

    :param views: the view of each compute party, in MPyC party order.
    :param names: the compute parties' ids, in the same order (for the reason).
    """
    first = views[0]
    differ = [names[i] for i, view in enumerate(views) if view != first]
    if differ:
        keys = sorted({k for view in views for k in view if any(v.get(k) != first.get(k) for v in views)})
        raise AgreementError(f"compute parties {', '.join(differ)} disagree with {names[0]} on {', '.join(keys)}")
