"""Readable reports: one self-contained HTML file with tables and embedded plots."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis.core.io import atomic_write_text

__all__ = ["Report", "figure_to_png"]


def figure_to_png(fig: Any) -> bytes:
    """PNG bytes of a matplotlib figure (the figure is closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


@dataclass
class Report:
    """An HTML report assembled section by section.

    Example:
        >>> r = Report("SASRec on Beauty")
        >>> r.text("Leave-one-out, full ranking.")
        >>> r.table(["metric", "value"], [["NDCG@10", 0.041]])
        >>> r.write("report.html")
    """

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        """Add a section heading."""
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str) -> None:
        """Add a paragraph of plain text."""
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Add a table; floats are shown with four significant digits."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
            for row in rows
        )
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, fig: Any, caption: str = "") -> None:
        """Embed a matplotlib figure as a PNG."""
        data = base64.b64encode(figure_to_png(fig)).decode()
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(
            f'<figure><img src="data:image/png;base64,{data}"/>{cap}</figure>'
        )

    def render(self) -> str:
        """The whole HTML document."""
        style = (
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}"
            "img{max-width:100%}"
        )
        body = "\n".join(self.parts)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{style}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the report atomically."""
        return atomic_write_text(path, self.render())
