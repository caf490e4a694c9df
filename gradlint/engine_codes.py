"""What the engine's own codes mean: GL000 and GL001 have pages like the rules'.

`gradlint explain GL001`, the generated `docs/rules/GL001.md` and the SARIF rule entries
read them from here.
"""

from __future__ import annotations

from collections.abc import Mapping

SUMMARIES: Mapping[str, str] = {
    "GL000": "a rule failed on this file (please report it)",
    "GL001": "the file could not be read or parsed (also broken notebook JSON)",
}

DOCS: Mapping[str, str] = {
    "GL000": """\
## What it does
Reports that one of gradlint's rules raised an error on this file. That rule is switched off
for this file only: the other rules still report here, and other files are not affected.

## Why is this bad?
It is a bug in gradlint, not in your code, but the failed rule may have missed a real problem
in this file. Please report it at the gradlint issue tracker with the message and, if you can,
a few lines that reproduce it. Until it is fixed, `# noqa: GL000` on the reported line or
`--ignore GL000` hides it.
""",
    "GL001": """\
## What it does
Reports a file that gradlint could not analyse: it cannot be read, it is not valid text in
its declared encoding, it is not valid Python (the message gives Python's own error and
position), it is a notebook whose JSON is broken, or it is too large, too deeply nested or too
slow to lint. The run goes on with the other files. A file named on the command line is
reported even when it never mentions torch.

## Why is this bad?
Nothing in this file was checked, so the absence of other findings says nothing about it. A
file that does not parse would also fail when Python imports it.
""",
}
