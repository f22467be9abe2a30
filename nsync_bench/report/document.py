"""The report's document model: paragraphs, bullet lists, tables and figures, grouped in sections.

Sections are built once from these blocks and written twice (Markdown and HTML, report.render), so
the two documents cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Block", "Cell", "Picture", "Section", "Table"]


@dataclass
class Cell:
    text: str
    bold: bool = False
    cls: str = ""  # HTML class: best, supported, contradicted, inconclusive, not-tested, sig


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Picture:
    title: str
    file: str  # path relative to the report folder (Markdown links it, HTML embeds the bytes)
    png: bytes
    caption: str = ""


Block = str | list[str] | Table | Picture  # a paragraph, a bullet list, a table, a figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2
