"""What a conclusion may say about an invalid or unstable run: the
``**Invalid run:**`` and ``**Unstable samples:**`` paragraphs, ``guard_claim``
for a notebook's own sentences, and ``frame_conclusion`` for the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from h3lab.studies.validity.checks import Validity

INVALID_PREFIX = "**Invalid run:**"
UNSTABLE_PREFIX = "**Unstable samples:**"


def invalid_paragraph(validity: Validity) -> str:
    """``**Invalid run:** reason; reason. ...`` ('' when the run is ok)."""
    if validity.ok:
        return ""
    reasons = "; ".join(validity.reasons) or "a check failed"
    return (
        f"{INVALID_PREFIX} {reasons}. The figures below are kept for diagnosis; "
        "no difference is claimed from them."
    )


def unstable_paragraph(validity: Validity, limit: int = 20) -> str:
    """``**Unstable samples:** warning; warning ...`` ('' when there is none)."""
    if not validity.warnings:
        return ""
    shown = "; ".join(validity.warnings[:limit])
    more = f" (and {len(validity.warnings) - limit} more)" if len(validity.warnings) > limit else ""
    return f"{UNSTABLE_PREFIX} {shown}{more}."


def claims_allowed(validity: Validity | Mapping[str, Any] | None) -> bool:
    """May a conclusion claim a difference? Only from an ok (valid or unstable) run."""
    if validity is None:
        return True
    v = Validity.from_json(validity) if isinstance(validity, Mapping) else validity
    return v.ok


def guard_claim(validity: Validity | Mapping[str, Any] | None, claim: str) -> str:
    """``claim`` when the run is ok, else the sentence that no difference is claimed."""
    if claims_allowed(validity):
        return claim
    return "No difference is claimed: the run is invalid (see above)."


DIAGNOSIS_NOTE = "_Computed from these measurements, kept for diagnosis only (not a conclusion):_"


def frame_conclusion(text: str, validity: Validity | Mapping[str, Any] | None) -> str:
    """``text`` framed by the run's validity (safe to apply twice).

    Invalid run: the ``**Invalid run:**`` paragraph (every reason) comes first.
    If ``text`` already opens with one (the notebook knew, and worded its
    claims with ``guard_claim``), that paragraph is replaced by the complete
    one; otherwise the notebook concluded before the run was found invalid
    (the runner's machine watch decides after the last cell), so its text is
    kept only as a quoted block marked as diagnosis, never as a conclusion.
    Unstable samples: their paragraph is appended once.
    """
    if validity is None:
        return text
    v = Validity.from_json(validity) if isinstance(validity, Mapping) else validity
    body = text.strip()
    head = invalid_paragraph(v)
    if head:
        if body.startswith(INVALID_PREFIX):
            _, _, rest = body.partition("\n\n")
            body = f"{head}\n\n{rest}" if rest else head
        elif body:
            quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
            body = f"{head}\n\n{DIAGNOSIS_NOTE}\n\n{quoted}"
        else:
            body = head
    tail = unstable_paragraph(v)
    if tail and UNSTABLE_PREFIX not in body:
        body = f"{body}\n\n{tail}"
    return body.strip() + "\n"
