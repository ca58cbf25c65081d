"""Support's look-up of one person by email, for the constituent viewer and ``lookup`` alike: who
Personify360 has for the address, their System Activities, and the queue rows that concern them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from writeback_console.intake import InputError, validate_email
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.values import Activity, Constituent
from writeback_console.store import people
from writeback_console.store.engine import read_session
from writeback_console.store.people import PersonRow

ClientFactory = Callable[[], PersonifyClient]

#: The marker every ActivityText ends with: ``[ref WB-…]`` (a writeback's or a recipient's reference).
REF_MARKER = re.compile(r"\[ref (WB-[A-Z0-9]+)\]", re.IGNORECASE)


class NotAnEmail(ValueError):
    """What was typed is not an email address; the message says what is wrong with it."""


def check_email(text: str) -> str:
    """The address to look up, by the rule intake applies to writebacks; NotAnEmail says what is wrong.

    Asking Personify360 for something that is no address would only answer "nobody has it", which
    reads as "this person does not exist".
    """
    email = text.strip()
    if not email:
        raise NotAnEmail("Type an email address to look up.")
    unseen = _unseen_character(email)
    if unseen is not None:
        raise NotAnEmail(
            f"{email!r} is not an email address: it has {unseen}; "
            "type a whole address such as ann@example.org."
        )
    try:
        return validate_email(email)
    except InputError as exc:
        local, at, domain = email.rpartition("@")
        if not at:
            problem = f"{email!r} is not an email address: it has no @"
        elif not domain:
            problem = f"{email!r} is not an email address: nothing follows the @"
        elif not local:
            problem = f"{email!r} is not an email address: nothing comes before the @"
        else:
            problem = exc.problem
        raise NotAnEmail(
            f"{problem[0].upper()}{problem[1:]}; type a whole address such as ann@example.org."
        ) from None


def _unseen_character(text: str) -> str | None:
    """What in ``text`` no address holds and no one can see: a control or invisible character, or a
    byte that was not UTF-8 (a shell passes it on as a lone surrogate); None when there is none."""
    for ch in text:
        if ch.isprintable():
            continue
        kind = unicodedata.category(ch)
        if kind == "Cs":
            return "a byte that is not UTF-8 text"
        if kind == "Cc":
            return f"a control character (U+{ord(ch):04X})"
        return f"an invisible character (U+{ord(ch):04X})"
    return None


def ref_in(text: str) -> str | None:
    """The reference an activity's text ends with (the last ``[ref WB-…]`` in it), upper-cased."""
    found = REF_MARKER.findall(text or "")
    return found[-1].upper() if found else None


def find_constituents(client_factory: ClientFactory, email: str) -> list[Constituent]:
    """Everyone Personify360 has with this email (checked first: nothing is asked for a non-address)."""
    email = check_email(email)
    with client_factory() as client:
        return client.find_constituents_by_email(email)


def load_activities(client_factory: ClientFactory, master: str, sub: int) -> list[Activity]:
    with client_factory() as client:
        return client.list_activities(master, sub)


def queue_rows(factory: sessionmaker[Session], email: str) -> list[PersonRow]:
    """The person's queue rows, newest first: by email, and mailing activity by recipient."""
    with read_session(factory) as session:
        return people.rows_for_email(session, email)


@dataclass(frozen=True, slots=True)
class ConstituentActivities:
    constituent: Constituent
    #: Newest first.
    activities: list[Activity]


@dataclass(frozen=True, slots=True)
class PersonLookup:
    """Everything ``lookup`` prints for one email."""

    email: str
    constituents: list[ConstituentActivities]
    queue_rows: list[PersonRow]


def look_up(client_factory: ClientFactory, factory: sessionmaker[Session], email: str) -> PersonLookup:
    """One person, whole: the constituents with their activities, and the queue rows."""
    email = check_email(email)
    with client_factory() as client:
        found = client.find_constituents_by_email(email)
        constituents = [
            ConstituentActivities(c, client.list_activities(c.master_customer_id, c.sub_customer_id))
            for c in found
        ]
    return PersonLookup(email, constituents, queue_rows(factory, email))
