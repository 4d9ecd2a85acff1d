"""Every exception chrononaut raises, rooted at :class:`ChrononautException`.

Callers catch the subtree they care about and read structured attributes;
they never need to parse a message.
"""

from __future__ import annotations


class ChrononautException(Exception):
    """Base class of every chrononaut error."""


class ConfigurationError(ChrononautException, ValueError):
    """A model or an app is configured in a way chrononaut cannot honour.

    Raised at mapping time, for example for an unknown column name in
    ``__chrononaut_hidden__``.
    """


class HiddenAttributeError(ChrononautException, AttributeError):
    """Read of a hidden column on a history object (its value is not kept)."""


class UntrackedAttributeError(ChrononautException, AttributeError):
    """Read of an untracked column on a history object (it is not versioned)."""
