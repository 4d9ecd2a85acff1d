"""Reading and validating the document form (no form library needed).

Every value is checked before anything is written: numbers are ASCII digits
(``[0-9]+``, so ``²`` is refused), one-line fields hold no control
characters, and no field holds a NUL (PostgreSQL text cannot). A bad value is
a 400 with the form shown again and the field marked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from .models import STATUS_LABELS, TITLE_MAX

#: The document columns the form edits, in display order.
FIELDS = ("title", "body", "status", "reviewer_notes")
FIELD_LABELS = {
    "title": "Title",
    "body": "Body",
    "status": "Status",
    "reviewer_notes": "Reviewer notes",
}
BODY_MAX = 20_000
RATIONALE_MAX = 200
#: The fields a document form posts, kept when its session is lost (see auth.py).
CARRIED_FIELDS = (*FIELDS, "version", "rationale")
_NUMBER = re.compile(r"[0-9]{1,18}")


def parse_number(raw: str | None) -> int | None:
    """``raw`` as an int if it is 1 to 18 ASCII digits, else None (``"²"``, ``"-1"``, ``""``)."""
    if raw is None or not _NUMBER.fullmatch(raw):
        return None
    return int(raw)


def has_control_characters(text: str, allow: str = "\n\r\t") -> bool:
    """Whether ``text`` holds a control character (or a lone surrogate) not in ``allow``."""
    return any(
        unicodedata.category(ch) in ("Cc", "Cs") and ch not in allow
        for ch in text
        if not ch.isprintable()
    )


@dataclass
class DocumentForm:
    """The submitted values, the base ``version`` (edits only), and errors per field."""

    values: dict[str, str] = field(default_factory=dict)
    version: int | None = None
    rationale: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_document(cls, document: Any) -> DocumentForm:
        """The form as rendered for ``document``'s current version."""
        values = {name: getattr(document, name) or "" for name in FIELDS}
        return cls(values=values, version=document.version)

    @classmethod
    def from_request(cls, form: MultiDict[str, str], with_version: bool) -> DocumentForm:
        """Parse and validate a POSTed form; ``errors`` is empty when it is valid."""
        values = {name: form.get(name, "").replace("\r\n", "\n") for name in FIELDS}
        values["title"] = values["title"].strip()
        parsed = cls(values=values, rationale=form.get("rationale", "").strip())
        errors = parsed.errors
        if not values["title"]:
            errors["title"] = "A title is required."
        elif len(values["title"]) > TITLE_MAX:
            errors["title"] = (
                f"Keep the title to {TITLE_MAX} characters (it has {len(values['title'])})."
            )
        elif has_control_characters(values["title"], allow=""):
            errors["title"] = "The title cannot hold line breaks or control characters."
        if values["status"] not in STATUS_LABELS:
            errors["status"] = f"Choose one of: {', '.join(STATUS_LABELS.values())}."
        for name in ("body", "reviewer_notes"):
            if len(values[name]) > BODY_MAX:
                errors[name] = f"Keep the {FIELD_LABELS[name].lower()} to {BODY_MAX} characters."
            elif has_control_characters(values[name]):
                errors[name] = "Remove the control characters (such as NUL) from this text."
        if len(parsed.rationale) > RATIONALE_MAX:
            errors["rationale"] = f"Keep the reason to {RATIONALE_MAX} characters."
        elif has_control_characters(parsed.rationale, allow=""):
            errors["rationale"] = "The reason cannot hold line breaks or control characters."
        if with_version:
            parsed.version = parse_number(form.get("version"))
            if parsed.version is None:
                errors["version"] = "The form lost the version it was based on: reload the page."
        return parsed

    @property
    def valid(self) -> bool:
        """True when there are no errors."""
        return not self.errors
