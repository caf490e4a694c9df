"""Runtime gradient probe: the only part of gradlint that imports torch, and only lazily.

Importing this package never imports torch; `GradientProbe` does so when it is entered.
"""

from __future__ import annotations

from gradlint.probe.analysis import CODES, analyze
from gradlint.probe.hooks import GradientProbe
from gradlint.probe.spec import InputSpec, ProbeSpec, Thresholds
from gradlint.probe.stats import Location, ModuleStats, ParamStats, ProbeReport, StepReport

__all__ = [
    "CODES",
    "GradientProbe",
    "InputSpec",
    "Location",
    "ModuleStats",
    "ParamStats",
    "ProbeReport",
    "ProbeSpec",
    "StepReport",
    "Thresholds",
    "analyze",
]
