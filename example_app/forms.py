"""Reading and validating the document form (no form library needed)."""

from __future__ import annotations

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
        if values["status"] not in STATUS_LABELS:
            errors["status"] = f"Choose one of: {', '.join(STATUS_LABELS.values())}."
        if len(values["body"]) > BODY_MAX:
            errors["body"] = f"Keep the body to {BODY_MAX} characters."
        if len(parsed.rationale) > RATIONALE_MAX:
            errors["rationale"] = f"Keep the reason to {RATIONALE_MAX} characters."
        if with_version:
            raw = form.get("version", "")
            if raw.isdigit():
                parsed.version = int(raw)
            else:
                errors["version"] = "The form lost the version it was based on: reload the page."
        return parsed

    @property
    def valid(self) -> bool:
        """True when there are no errors."""
        return not self.errors
