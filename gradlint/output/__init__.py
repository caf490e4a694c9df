"""One pure renderer per output format: results in, text out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gradlint.findings import FileResult
from gradlint.output import concise, full, github, gitlab, json_format, sarif

if TYPE_CHECKING:
    from gradlint.rule import Rule

Renderer = Callable[[Sequence[FileResult], Sequence["type[Rule]"]], str]

RENDERERS: dict[str, Renderer] = {
    "concise": concise.render,
    "full": full.render,
    "json": json_format.render,
    "github": github.render,
    "gitlab": gitlab.render,
    "sarif": sarif.render,
}

__all__ = ["RENDERERS", "Renderer"]
