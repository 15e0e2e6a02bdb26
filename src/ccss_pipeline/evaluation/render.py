"""Jinja2 rendering of the evaluation documents (the report, the model card) to Markdown and HTML.

The documents' wording and numbers are built in Python (:mod:`.report`, :mod:`.model_card`) as plain
view-model data — :class:`Part` (paragraphs around an optional :class:`Table`) and :class:`Figure` —
and laid out by the templates in ``templates/``: ``<document>.md.j2`` and ``<document>.html.j2``, each
importing its format's macros (``_macros.md.j2``, ``_macros.html.j2``); the HTML pages extend
``_page.html.j2``. Sentences live in Python, so the two formats cannot word anything differently.

Markdown is rendered without autoescaping (table cells escape ``|`` through the ``md_cell`` filter),
HTML with it; both use :class:`jinja2.StrictUndefined`, so a value a template names but the view lacks
fails the render instead of leaving a hole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

#: Where the templates live (package data of ``ccss_pipeline.evaluation``).
TEMPLATES = "templates"


@dataclass(frozen=True)
class Table:
    """A table: ``header`` and ``rows`` of already formatted cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Part:
    """The unit the templates lay out: paragraphs, an optional table, more paragraphs (in that order)."""

    before: list[str] = field(default_factory=list)
    table: Table | None = None
    after: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Figure:
    """An image: ``path`` relative to the document's folder (the Markdown links it) and, where the
    bytes are known, their ``data_uri`` (the HTML embeds it; without one the HTML names the path)."""

    path: str
    caption: str
    data_uri: str | None = None


def md_cell(text: Any) -> str:
    """A Markdown table cell: ``|`` would end the cell and a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_link_target(path: str) -> str:
    """A Markdown link target: a path with spaces or parentheses must be wrapped in ``<>``."""
    return f"<{path}>" if any(c in path for c in " ()") else path


@cache
def environment(fmt: str) -> Environment:
    """The environment of one output format, ``"md"`` or ``"html"`` (autoescaped)."""
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown document format {fmt!r}: 'md' or 'html'")
    env = Environment(
        loader=PackageLoader("ccss_pipeline.evaluation", TEMPLATES),
        autoescape=fmt == "html",
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md_cell=md_cell, md_link_target=md_link_target)
    return env


def render(document: str, view: dict[str, Any]) -> tuple[str, str]:
    """``(markdown, html)`` of ``document`` (the template stem: ``report``, ``model_card``) on ``view``."""
    markdown = environment("md").get_template(f"{document}.md.j2").render(view)
    page = environment("html").get_template(f"{document}.html.j2").render(view)
    # every Markdown block ends with a blank line; the file ends with one newline
    return markdown.rstrip("\n") + "\n", page
