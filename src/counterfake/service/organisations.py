"""What belongs to which organisation: the registry's names of subjects and hash banks.

An API key's name is its organisation. The registry is shared by every organisation, so a
subject or an imported bank is stored under a scoped name, ``<organisation>/<name>``, with the
organisation percent-escaped: an organisation's name may hold any character, ``/`` included,
yet ``helpA/x`` is never a part of ``helpA`` (its subjects are stored as ``helpA%2Fx/...``).
The mapping is one to one, so :func:`owner_of` gives back exactly the organisation that stored
a name.
"""

from __future__ import annotations

from urllib.parse import quote, unquote


def scope(organisation: str) -> str:
    """The prefix every name stored for ``organisation`` begins with (ending in ``/``)."""
    return quote(organisation, safe="") + "/"


def scoped(organisation: str, name: str) -> str:
    """The registry's name of ``organisation``'s subject or bank ``name``."""
    return scope(organisation) + name


def owner_of(stored: str) -> tuple[str, str]:
    """(organisation, name) of a name made by :func:`scoped`."""
    owner, _, name = stored.partition("/")
    return unquote(owner), name
