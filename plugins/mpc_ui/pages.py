"""HTML of the MPC runs pages: Jinja2 templates (``templates/``, autoescaped: whatever another
party wrote, an abort reason or an error, is shown as text) and the small formatting filters
they use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
REFRESH_SECONDS = 5  # while a run is live
IDLE_REFRESH_SECONDS = 30  # the list of runs, while none is live: new runs may start


def state_label(state: str) -> str:
    return {"computing": "ready / computing"}.get(state, state)


def logical_date(data: dict) -> str:
    """The run's logical date: '2024-04-01', or '2024-04-01 03:00 UTC' when not at midnight."""
    text = data.get("logical_date")
    if not text:
        return data["run"]
    date = datetime.fromisoformat(text).astimezone(UTC)
    return date.strftime("%Y-%m-%d") if date.time() == datetime.min.time() else date.strftime("%Y-%m-%d %H:%M UTC")


def progress(data: dict) -> str:
    """'shared 3/3 · computed 1/3 · revealed 0/1': how far each role has got."""
    parts = []
    for role, state in (("input", "shared"), ("compute", "computed"), ("recipient", "revealed")):
        members = [p for p in data["parties"] if role in p["roles"]]
        if members:
            reached = sum(1 for p in members if state in p["events"])
            parts.append(f"{state} {reached}/{len(members)}")
    return " · ".join(parts)


def clock(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else ""


def number(value: Any) -> str:
    return "" if value is None else f"{value:,.2f}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        state_label=state_label,
        logical_date=logical_date,
        progress=progress,
        clock=clock,
        seconds=seconds,
        number=number,
    )
    return env


ENV = _environment()


def render(
    template: str, *, base: str, party: str, live: bool, idle_refresh: int = 0, partial: bool = False, **context: Any
) -> str:
    """A page whose #content refreshes every REFRESH_SECONDS while ``live``, else every
    ``idle_refresh`` seconds (0: not at all); ``partial``: the #content only (for the refresh).

    :param base: the app's URL prefix as the browser sees it (links and static files).
    """
    refresh = REFRESH_SECONDS if live else idle_refresh
    return ENV.get_template(template).render(
        base=base,
        party=party,
        live=live,
        refresh=refresh,
        idle_refresh=idle_refresh,
        partial=partial,
        live_every=REFRESH_SECONDS,
        checked=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        **context,
    )
