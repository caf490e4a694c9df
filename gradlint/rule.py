"""The Rule base class and the Valid / Invalid test-case declarations."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import libcst as cst
from libcst.metadata import CodeRange, PositionProvider

from gradlint.findings import Edit, Finding, Fix, Severity
from gradlint.project import ClassFacts, Deferred, FileSummary

if TYPE_CHECKING:
    from gradlint.semantics.index import TorchIndex


@dataclass(frozen=True)
class Valid:
    """Source that the rule must stay quiet on."""

    code: str

    @property
    def source(self) -> str:
        return _dedent(self.code)


@dataclass(frozen=True)
class Invalid:
    """Source that the rule must report, at `line` (1-based, after dedent)."""

    code: str
    line: int | None = None
    message: str | None = None  # a substring the message must contain
    fixed: str | None = None  # the source after autofix; having it marks the rule fixable

    @property
    def fixed_source(self) -> str | None:
        return None if self.fixed is None else _dedent(self.fixed)

    @property
    def source(self) -> str:
        return _dedent(self.code)


def _dedent(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def kebab_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass(frozen=True)
class RuleContext:
    """What a rule instance may look at for the one file it checks."""

    path: str
    module: cst.Module
    wrapper: cst.MetadataWrapper
    index: TorchIndex
    options: dict[str, Any]
    severity: Severity | None = None  # set when the configuration overrides the rule's own


class Rule:
    """
    Base class of every gradlint rule.

    A rule is a libcst-style visitor: define `visit_<Node>` / `leave_<Node>` methods and the
    engine calls them during its single traversal of each file, one rule instance per file.
    Call `self.report(node, **fields)` to emit a finding; `fields` fill `MESSAGE`.
    """

    CODE: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    MESSAGE: ClassVar[str]
    HINT: ClassVar[str | None] = None
    # Some findings of a rule are surer (or less sure) than others: their severity, and when.
    OTHER_SEVERITY: ClassVar[Severity | None] = None
    OTHER_SEVERITY_WHEN: ClassVar[str] = ""
    DEFAULT_ENABLED: ClassVar[bool] = True
    # A preview rule is not yet precise enough on real code to be on by default: it runs with
    # `--preview` / `preview = true`, or when its code or name is selected explicitly.
    PREVIEW: ClassVar[bool] = False
    # Whether the rule also runs on test code (`test-paths`). Toy models with arbitrary learning
    # rates, odd inits and short loops are the norm there, so most rules stay quiet.
    IN_TESTS: ClassVar[bool] = False
    OPTIONS: ClassVar[dict[str, Any]] = {}
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []
    # Words a file must contain at least one of for this rule to be able to report anything
    # there (every spelling that reaches what the rule looks for, imports included). The
    # engine skips the rule on other files without parsing anything for it. Empty: every file.
    NEEDS: ClassVar[tuple[str, ...]] = ()
    # the project phase hands deferred findings naming the same class to `join_deferred`
    JOINS_DEFERRED: ClassVar[bool] = False

    def __init__(self, context: RuleContext) -> None:
        self.context = context
        self.findings: list[Finding] = []
        self.deferred: list[Deferred] = []

    # -- declarations -------------------------------------------------------------------

    @classmethod
    def name(cls) -> str:
        return kebab_case(cls.__name__)

    @classmethod
    def summary(cls) -> str:
        """The first sentence of 'What it does', for `gradlint rules`."""
        doc = textwrap.dedent(cls.__doc__ or "")
        match = re.search(r"## What it does\s*\n(.+?)(?:\n\s*\n|\n##|$)", doc, re.S)
        text = " ".join((match.group(1) if match else doc).split())
        while "(" in text and ")" in text:  # asides make a one-liner too long
            shorter = re.sub(r"\s*\([^()]*\)", "", text)
            if shorter == text:
                break
            text = shorter
        return text.split(": ")[0].split(". ")[0].rstrip(".") + "."

    # -- what a rule uses while visiting ------------------------------------------------

    @property
    def index(self) -> TorchIndex:
        return self.context.index

    @property
    def options(self) -> dict[str, Any]:
        return self.context.options

    def position(self, node: cst.CSTNode) -> CodeRange:
        return self.context.wrapper.resolve(PositionProvider)[node]

    def report(
        self,
        node: cst.CSTNode,
        *,
        message: str | None = None,
        severity: Severity | None = None,
        fix: Fix | None = None,
        **fields: Any,
    ) -> None:
        """Record a finding at `node`; `severity` overrides SEVERITY for this finding only."""
        where = self.position(node)
        text = message if message is not None else self.MESSAGE.format(**fields)
        self.findings.append(
            Finding(
                path=self.context.path,
                line=where.start.line,
                column=where.start.column + 1,
                end_line=where.end.line,
                end_column=where.end.column + 1,
                code=self.CODE,
                name=self.name(),
                severity=self.context.severity or severity or self.SEVERITY,
                message=text,
                hint=self.HINT,
                fix=fix,
            )
        )

    def replace(self, node: cst.CSTNode, replacement: str) -> Edit:
        """An edit that replaces the source text of `node` (for fixes)."""
        where = self.position(node)
        return Edit(
            where.start.line,
            where.start.column + 1,
            where.end.line,
            where.end.column + 1,
            replacement,
        )

    def insert_before(self, node: cst.CSTNode, text: str) -> Edit:
        """An edit that inserts `text` where `node` starts (for fixes)."""
        where = self.position(node)
        return Edit(
            where.start.line, where.start.column + 1, where.start.line, where.start.column + 1, text
        )

    # -- the project phase ----------------------------------------------------------------

    def defer(self, node: cst.CSTNode, qualified: str, **data: Any) -> None:
        """Leave a finding at `node` for the project phase, which knows the imported class
        `qualified` (as this file's imports spell it); `resolve_deferred` decides on it."""
        where = self.position(node)
        self.deferred.append(
            Deferred(
                code=self.CODE,
                qualified=qualified,
                line=where.start.line,
                column=where.start.column + 1,
                end_line=where.end.line,
                end_column=where.end.column + 1,
                data=data,
            )
        )

    @classmethod
    def resolve_deferred(cls, item: Deferred, facts: ClassFacts, where: FileSummary) -> str | None:
        """The message of the finding, once `item.qualified` is known to be the class
        `facts` defined in the file `where`; None when there is nothing to report."""
        return None

    @classmethod
    def join_deferred(
        cls, item: Deferred, partners: Sequence[tuple[Deferred, FileSummary]]
    ) -> str | None:
        """The message of a finding at `item`, given the deferred findings of this rule in
        other places that name the same project class (`partners`, each with its file): a
        subclass whose forward ends in softmax here, a loss on that class's output there.
        None when there is nothing to report; called only when JOINS_DEFERRED is set."""
        return None
