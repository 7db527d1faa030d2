"""Formatting for the benchmark report: numbers as table cells, and the markdown document."""

from __future__ import annotations


def mib(x) -> str:
    if x is None:
        return "–"
    return f"{x / 1024:,.0f} GiB" if x >= 10 * 1024 else f"{x:,.0f}"


def byte_size(x) -> str:
    if x is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= size:
            return f"{x / size:,.1f} {unit}"
    return f"{x:,.0f} B"


def ratio(x) -> str:
    return "–" if x is None else (f"{x:,.0f}×" if x >= 100 else f"{x:,.2f}×")


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def largest(values) -> float | None:
    """The largest of ``values`` (None counts as 0), or None when there are none."""
    values = list(values or [])
    return max(v or 0 for v in values) if values else None


class Doc:
    """Markdown lines: paragraphs, tables and images, each followed by a blank line."""

    def __init__(self, images: dict[str, str]):
        self.lines: list[str] = []
        self.images = images

    def para(self, *texts: str) -> None:
        self.lines += [*texts, ""]

    def table(self, header: list[str], align: str, rows) -> None:
        """:param align: one letter per column, ``l`` (left) or ``r`` (right)."""
        self.lines.append(self._row(header))
        self.lines.append("|" + "".join("---|" if a == "l" else "---:|" for a in align))
        self.lines += [self._row(row) for row in rows]
        self.lines.append("")

    @staticmethod
    def _row(cells) -> str:
        return "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"

    def image(self, key: str, alt: str) -> None:
        if key in self.images:
            self.para(f"![{alt}](plots/{self.images[key]})")
