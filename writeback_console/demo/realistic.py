"""The realistic demo: a queue at rest, as an association of about 40,000 members has it after ninety
days of Informz writing back to Personify360, and a simulator that knows the same people.

What each part models (plain data made into rows; times are seconds since the epoch, UTC):

- **People** (:meth:`_Demo.people`): members whose Personify360 ids are drawn at random (not made from
  their emails), with emails such as ``ann.lee@example.org`` and digits only to tell namesakes apart;
  households whose two records share one email, neither primary; records merged away in Personify360
  whose old id Informz still holds; prospects Personify360 does not know.
- **Mailings** (:meth:`_Demo.mailings`): a Tuesday newsletter, a Thursday digest, webinar invitations,
  monthly chapter, foundation and renewal mailings, a conference announcement, an invitation to
  prospects and an advocacy alert sent after the dispatcher's last run; each sent once, to its list.
- **Responses** (:meth:`_Demo.respond`): opens and clicks; hard bounces (1%, an Invalid Email Address
  writeback within minutes), unsubscribes and interest changes over the next day or two. Whoever
  unsubscribed or bounced gets no later mailing.
- **Background** (:meth:`_Demo.background`): preference-centre changes, busier on weekdays and in office
  hours, filling ``rows`` exactly.
- **The dispatcher** (:meth:`_Demo.runs`): a run every ten minutes until two hours ago
  (``p360-dispatch-01`` went down for patching; the console on Ann's laptop ran some runs in office
  hours), so what arrived since is New. A row that fails used its three attempts ten minutes apart,
  with the message this project's dispatcher records for it against this simulator (:class:`_Answers`).
  Staff schedule each mailing's activity for 6:00 three days after it was sent.
- **Yesterday's bulk retry** (:meth:`_Demo.bulk_retry`): at about 10:20 an advisor retried all the
  Interests rows of one account that failed while the activity code was inactive (Retry all matching, as
  ``operations.act_on_matching`` does it: one audit entry a batch, with the list's filter); the next run
  sent them. The other accounts' rows of that morning are still Error, for the user to retry.
- **Personify360** (:func:`write_simulator`): every member but the merged-away records, and the
  activities of the Sent writebacks of the last 30 days and of the mailing activity of the last 7.

Times of day are US Eastern (the association's office), with daylight saving time.

Longer than most modules (about 900 lines) on purpose: it is one model whose parts draw from the same
people, mailings and runs; the fast writing of its rows is in ``bulk.py``.
"""

from __future__ import annotations

import gc
import json
import math
import multiprocessing as mp
import random
import threading
from bisect import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from writeback_console.demo import people as names
from writeback_console.demo import seed
from writeback_console.demo.bulk import Fork, Part, columns_of, literal, part_of, stage, write_queue
from writeback_console.dispatch.send import choose_constituent
from writeback_console.domain import DEFAULT_MAX_ATTEMPTS, Kind, Status, mailing_activity_error, utcnow
from writeback_console.error_groups import error_reason
from writeback_console.personify import client, errors
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, MailingFacts, build_activity
from writeback_console.personify.values import Constituent as Found
from writeback_console.settings import AppSettings
from writeback_console.sim import store, wcf
from writeback_console.sim.odata_filter import datetime_to_storage
from writeback_console.store import models as m
from writeback_console.store.listing import WritebackFilter

#: 20,000 writebacks in 90 days, some 220 a day: the preference centre of 40,000 members and the answers
#: to about 40 mailings. Two hours of them (and an alert's bounces) are a few hundred: one run's work.
DEFAULT_ROWS = 20_000
MEMBERS, PROSPECTS, HOUSEHOLDS, MERGED = 40_000, 2_000, 60, 240
DAYS, INTERVAL, STOPPED, HISTORY_DAYS, MAILING_HISTORY_DAYS = 90, 600, 2 * 3600, 30, 7
HEADLESS, CONSOLE = "p360-dispatch-01:4242", "ANNS-LAPTOP:8123"
STAFF, IMPORTER = "ann.miller@ANNS-LAPTOP", "svc-informz@p360-dispatch-01"
ADVISOR = "dana.reyes@DANAS-PC"
#: Rows per transaction, and so per audit entry, of a retry of all matching rows (``MATCHING_BATCH`` of
#: ``operations``, which the demo does not import).
RETRY_BATCH = 1_000
#: Per recipient: a hard bounce, an open (a fifth of which click), an unsubscribe, an interest change.
BOUNCE, OPEN, UNSUBSCRIBE, INTEREST = 0.01, 0.38, 0.0025, 0.004
BACKGROUND = ((Kind.INTERESTS, 74), (Kind.UNSUBSCRIBE, 16), (Kind.RESUBSCRIBE, 6), (Kind.INVALID_EMAIL, 4))
#: Informz holds the Personify360 id of most members it writes back for; the rest are found by email.
WITH_ID = 0.8
#: Eastern hours 0-23 and days Monday to Sunday, as relative weights.
HOURLY = (2, 1, 1, 1, 1, 2, 4, 8, 14, 18, 20, 19, 17, 18, 19, 18, 15, 12, 10, 9, 8, 6, 4, 3)
DAILY = (1.0, 1.05, 1.0, 1.0, 0.9, 0.35, 0.3)
#: Recurring mailings: name, account, weekday, Eastern hour, every n weeks, median list size, and
#: whether each send has a list of its own (else the series keeps one list, less those who left).
SERIES = (
    ("Member Update", "Main", 1, 10, 1, 1_500, False),
    ("Career Center Digest", "Main", 3, 9, 2, 900, False),
    ("Webinar Invitation", "Main", 2, 11, 3, 1_100, True),
    ("Renewal Reminder", "Main", 0, 8, 4, 500, True),
    ("Chapter Newsletter", "Chapters", 4, 10, 4, 700, False),
    ("Foundation Impact Report", "Foundation", 2, 14, 4, 1_300, False),
    ("Chapter Leaders Briefing", "Chapters", 0, 16, 4, 200, False),
)
WEBINARS = ("Advocacy 101", "Ethics Update", "Leading Teams", "Billing Changes", "Grant Writing")
LINKS = ("register", "news/policy-update", "events", "journal/current", "careers", "donate")
#: Surnames besides the seed's, so that namesakes (and the digits that tell them apart) stay occasional.
SURNAMES = (
    names.LAST
    + """Howard Ward Gray James Watson Brooks Kelly Sanders Price Bennett Wood Barnes
    Ross Henderson Coleman Jenkins Perry Powell Long Patterson Hughes Washington Butler Simmons Foster Bryant
    Alexander Russell Griffin Hayes Myers Ford Hamilton Graham Sullivan Wallace Woods Cole West Jordan Owens
    Reynolds Fisher Ellis Harrison Gibson McDonald Marshall Murray Freeman Wells Webb Simpson Stevens Tucker
    Porter Hunter Hicks Crawford Henry Boyd Mason Kennedy Warren Dixon Burns Gordon Shaw Holmes Rice Hunt
    Robertson Black Daniels Palmer Mills Nichols Grant Knight Ferguson Rose Stone Hawkins Dunn Perkins Hudson
    Spencer Gardner Stephens Payne Pierce Berry Matthews Arnold Wagner Willis Ray Watkins Olson Carroll Duncan
    Snyder Hart Cunningham Bradley Lane Andrews Ruiz Harper Fox Riley Armstrong Carpenter Weaver""".split()
)
#: The No Remote Recipients attempt's message, as recording.mark_no_remote_recipients writes it.
NO_REMOTE = "the mailing has no recipient that exists in Personify360"
#: What every writeback at rest shares; what an automatic one has not; the columns it gives.
AT_REST = dict.fromkeys("locked_by locked_at lease_expires_at claimed_from uncertain_since".split())
AT_REST |= {"max_attempts": DEFAULT_MAX_ATTEMPTS, "interruptions": 0, "delivery_uncertain": False}
NO_MAILING = dict.fromkeys("mailing_id scheduled_for sent_at last_error next_attempt_at".split())
WHO = "id ref kind account email master_customer_id sub_customer_id payload occurred_at created_at updated_at"
EPOCH = datetime(1970, 1, 1)
_SUMMER: dict[int, tuple[datetime, datetime]] = {}
Row = tuple[Any, ...]
Failure = tuple[str, int | None, str | None]  # message, HTTP status, response excerpt
Run = tuple[float, float, str, str, str]  # an attempt: started, finished, dispatcher, both times as stored
Counts = tuple[int, int]


def eastern(moment: float) -> datetime:
    """The Eastern wall-clock time of a moment: EDT from the second Sunday of March, 2:00, to the first
    Sunday of November, 2:00 (computed, so that no time-zone database is needed)."""
    utc = EPOCH + timedelta(seconds=moment)
    if utc.year not in _SUMMER:
        march, november = datetime(utc.year, 3, 8, 7), datetime(utc.year, 11, 1, 6)
        week = timedelta(days=(6 - march.weekday()) % 7), timedelta(days=(6 - november.weekday()) % 7)
        _SUMMER[utc.year] = (march + week[0], november + week[1])
    start, end = _SUMMER[utc.year]
    return utc - timedelta(hours=4 if start <= utc < end else 5)


def at_eastern(day: datetime, hour: int, minute: int = 0) -> float:
    """The moment of an Eastern wall-clock time on ``day``'s date."""
    wall = (datetime(day.year, day.month, day.day, hour, minute) - EPOCH).total_seconds()
    return wall + (wall - (eastern(wall) - EPOCH).total_seconds())


def _when(moment: float | None) -> Any:
    return None if moment is None else datetime.fromtimestamp(moment, UTC)


@dataclass(slots=True)
class Person:
    number: int
    master: str | None  # None: a prospect, unknown to Personify360
    first: str
    last: str
    email: str
    merged: bool = False  # merged away in Personify360; Informz still has the old id
    household: list[Person] = field(default_factory=list)  # the records sharing this email


#: A recipient: who, opened, clicks (url, when), bounced, bounce reason.
Recipient = tuple[Person, float | None, list[tuple[str, float]], float | None, str | None]


@dataclass(slots=True)
class Arrival:
    """One automatic writeback: when it happened and arrived, what, for whom, and how it went."""

    created: float
    occurred: float
    kind: Kind
    account: str
    person: Person
    with_id: bool
    payload: dict[str, Any]
    id: int = 0
    ref: str = ""
    at: Any = None  # ``created`` as stored
    failure: Failure | None = None
    runs: list[Run] = field(default_factory=list)
    retried: float = 0.0  # when a person retried it once its attempts were used up (0: never)
    resent: Run | None = None  # the attempt that retry granted


@dataclass(slots=True)
class Send:
    """A mailing, its recipients, and how its mailing activity went."""

    id: int
    name: str
    account: str
    sent: float
    fate: Status = Status.SENT
    recipients: list[Recipient] = field(default_factory=list)
    first_recipient: int = 0  # the id of its first recipient row
    failing: Person | None = None  # a recipient Personify360 no longer knows, and what it said of them
    reason: str | None = None
    id_in_queue: int = 0  # its mailing activity, created by staff at ``created`` (``at`` as stored)
    ref: str = ""
    created: float = 0.0
    at: Any = None
    scheduled: float = 0.0
    cancelled: float = 0.0
    status: Status = Status.SCHEDULED
    failure: Failure | None = None
    runs: list[Run] = field(default_factory=list)


Item = Arrival | Send


class _Answers:
    """What this project's dispatcher records when a writeback fails against this simulator: the
    simulator's own validation and error document, read as the client reads them, and the dispatcher's
    own message for an email that leads to no single constituent."""

    def __init__(self) -> None:
        from writeback_console.demo import DEMO_PASSWORD, DEMO_USER

        self.mapping, self.operator = ActivityMapping(), AppSettings().operator
        self.scrub = errors.Scrubber(DEMO_USER, DEMO_PASSWORD)
        self.probe: store.Database | None = None  # the simulator's schema and codes, nobody in it

    def save(self, source: ActivitySource) -> Failure | None:
        """What a Save of this activity is answered with by a simulator that knows nobody."""
        f = build_activity(source, self.mapping)
        self.probe = self.probe or store.Database(Path(":memory:"))
        what = (f["ActivityCode"], f.get("ActivitySubcode"), datetime_to_storage(f["ActivityDate"]))
        new = store.NewActivity(f["MasterCustomerId"], 0, *what, f["ActivityText"], self.operator)
        reasons, _ = store.save_activity(self.probe, new)
        return self.refused(reasons) if reasons else None

    def inactive(self, kind: Kind) -> Failure:
        """What a Save of an activity of this kind is answered with while its activity code is inactive."""
        return self.refused([f"Activity Code '{self.mapping.codes[kind]}' is inactive."])

    def refused(self, reasons: list[str]) -> Failure:
        """The validation issue Personify360 answers with for these reasons, as the dispatcher records it."""
        error = wcf.validation_issue(" ".join(reasons))
        body = wcf.render_xml(error)
        message = errors.deepest_message(body, "application/xml") or ""
        return (
            self.scrub.excerpt(message, client.MAX_MESSAGE_LENGTH),
            error.status,
            self.scrub.excerpt(errors.body_text(body)),
        )

    @staticmethod
    def resolve(email: str, records: list[Person]) -> str:
        """The dispatcher's message for an email Personify360 has for none, or several, of its records."""
        found = [Found(p.master or "", 0, None, p.first, p.last, "I", False, email) for p in records]
        found.sort(key=lambda c: (not c.primary, c.master_customer_id))  # as the client sorts them
        choice = choose_constituent(email, found)
        assert isinstance(choice, str), "an email of one record is no failure"
        return choice


class _Demo:
    """The demo being drawn: its random numbers and clock, what happened, and the rows made of it."""

    def __init__(self, rows: int, random_seed: int, now: datetime, sqlite: bool) -> None:
        self.rng, self.rows, self.now = random.Random(random_seed), rows, now.timestamp()
        # The dispatcher's last run (runs start 7 s past each ten minutes): two hours ago.
        self.last_run = (self.now - STOPPED) // INTERVAL * INTERVAL + 7
        self.start, self.scale = self.now - DAYS * 86400, min(1.0, rows / DEFAULT_ROWS)
        self.t: Callable[[float], Any] = self._sqlite_t if sqlite else self._aware_t
        self.j: Callable[[Any], Any] = json.dumps if sqlite else (lambda v: v)
        self.refs, self.answers = seed._Refs(self.rng, set()), _Answers()
        self.hours: dict[int, str] = {}
        self.payloads: dict[int, Any] = {}
        self.arrivals: list[Arrival] = []
        self.activities: list[Row] = []  # for the simulator, see write_simulator
        self.gone: dict[int, float] = {}  # who unsubscribed or bounced, and when
        self.left: list[tuple[float, Person]] = []  # unsubscribes, some of whom resubscribe
        self.failures: dict[tuple[int, bool], Failure | None] = {}
        # On the morning three days before the last run someone at the association set the Interests
        # activity code inactive in Personify360 for five hours (8:00 to 13:00, office hours, so that
        # every account has rows that failed); it is active again, so those rows go once retried.
        off = at_eastern(eastern(self.last_run) - timedelta(days=3), 8)
        self.code_off = (off, off + 5 * 3600)
        self.retries: list[tuple[float, list[Arrival]]] = []  # yesterday's bulk retry: each batch, when
        self.retry_filter: dict[str, Any] = {}  # the filter it recorded
        self.office: list[bool] = []  # per hour since the start: office hours (the console runs some runs)
        columns = "writeback_id recipient_id ref status attempts sent_at activity_id last_error updated_at"
        self.deliveries = part_of(m.Delivery, columns, {"uncertain": False, "lease_token": 0})

    def _sqlite_t(self, moment: float) -> str:
        """A moment in SQLAlchemy's SQLite form (as ``seed._sqlite_time`` writes it), without a datetime."""
        hour, rest = divmod(round(moment * 1_000_000), 3_600_000_000)
        if hour not in self.hours:
            self.hours[hour] = seed._sqlite_time(EPOCH + timedelta(hours=hour))[:14]
        second, micro = divmod(rest, 1_000_000)
        return f"{self.hours[hour]}{second // 60:02d}:{second % 60:02d}.{micro:06d}"

    @staticmethod
    def _aware_t(moment: float) -> datetime:
        return seed._aware(EPOCH + timedelta(microseconds=round(moment * 1_000_000)))

    def payload(self, value: dict[str, Any]) -> Any:
        """A payload as stored: the same few are shared by many rows, and made once."""
        if id(value) not in self.payloads:
            self.payloads[id(value)] = self.j(value)
        return self.payloads[id(value)]

    # ---------------------------------------------------------------------------------- what happened

    def people(self) -> tuple[list[Person], list[Person]]:
        """Members (ids drawn at random) and prospects, with an email each."""
        rng, rand, taken, everyone = self.rng, self.rng.random, set(), []
        ids = rng.sample(range(100_000, 1_000_000), MEMBERS)
        for n in range(MEMBERS + PROSPECTS):
            first, last = names.FIRST[int(rand() * len(names.FIRST))], SURNAMES[int(rand() * len(SURNAMES))]
            f, la, style = first.lower(), last.lower(), rand()
            if style < 0.45:
                local = f"{f}.{la}"
            elif style < 0.72:
                local = f"{f[0]}{la}" if style < 0.65 else f"{f}{la[0]}"
            else:
                local = f"{f}.{chr(97 + int(rand() * 26))}.{la}" if style < 0.95 else f"{f}_{la}"
            domain = names.DOMAINS[int(rand() ** 1.5 * len(names.DOMAINS))]
            email = f"{local}@{domain}"
            while email in taken:  # a namesake: digits, as people choose them
                email = f"{local}{2 + int(rand() * 98)}@{domain}"
            taken.add(email)
            everyone.append(Person(n, f"{ids[n]:012d}" if n < MEMBERS else None, first, last, email))
        members, picked = everyone[:MEMBERS], rng.sample(range(MEMBERS), 2 * HOUSEHOLDS + MERGED)
        for a, b in zip(picked[0 : 2 * HOUSEHOLDS : 2], picked[1 : 2 * HOUSEHOLDS : 2], strict=True):
            one, two = members[a], members[b]  # a couple sharing one address
            two.email, two.last = one.email, one.last
            one.household = two.household = [one, two]
        for n in picked[2 * HOUSEHOLDS :]:
            members[n].merged = True
        return members, everyone[MEMBERS:]

    def mailings(self, members: list[Person], prospects: list[Person]) -> list[Send]:
        """Every mailing of the last 90 days, each to its list, in the order they went out."""
        rng, today, plans = self.rng, eastern(self.now), []
        mailable = [p for p in members if not p.merged and (not p.household or p.household[0] is p)]

        def members_list(size: int) -> list[Person]:  # with a few subscribers who are no members
            return rng.sample(mailable, size) + rng.sample(prospects, size // 25)

        def size(median: int) -> int:
            return max(200, min(40_000, round(rng.lognormvariate(math.log(median), 0.5))))

        for name, account, weekday, hour, every, median, own in SERIES:
            audience = None if own else members_list(size(median))
            for week in range(DAYS // 7 // every + 1):
                day = today - timedelta(days=(today.weekday() - weekday) % 7 + 7 * every * week)
                sent, topic = at_eastern(day, hour, int(rng.random() * 20)), ""
                if own and every < 4:
                    topic = f": {WEBINARS[week % len(WEBINARS)]}"
                if self.start < sent < self.last_run:
                    to = audience or members_list(size(median))
                    plans.append((sent, name + topic, account, to))
        conference = (at_eastern(today - timedelta(days=23), 10), "Annual Conference: Early Registration")
        plans.append((*conference, "Main", members_list(6_000)))
        invitation = at_eastern(today - timedelta(days=40), 11)
        plans.append((invitation, "Membership Invitation", "Main", rng.sample(prospects, 800)))
        # Sent after the dispatcher's last run: its bounces and first unsubscribes are the backlog.
        alert = "Advocacy Alert: Contact Your Legislators"
        plans.append((self.last_run + 600, alert, "Main", members_list(12_000)))
        sends = []
        for number, (sent, name, account, audience) in enumerate(sorted(plans, key=lambda p: p[0]), start=1):
            when = eastern(sent)
            sends.append(Send(number, f"{name} – {when:%b} {when.day}, {when.year}", account, sent))
            self.respond(sends[-1], audience)
        for s in [s for s in sends if s.name.startswith("Chapter Leaders")][-2:]:
            s.fate = Status.CANCELLED  # staff keep internal briefings out of Personify360
        for s in sends:
            if s.name.startswith("Membership Invitation"):
                s.fate = Status.NO_REMOTE_RECIPIENTS  # prospects: nobody Personify360 knows
        old = self.now - 8 * 86400
        chapter = [s for s in sends if s.name.startswith("Chapter Newsletter") and s.sent < old]
        if chapter:  # its list still holds a merged-away record's old id: one recipient fails
            chapter[-1].fate, chapter[-1].failing = Status.ERROR, next(p for p in members if p.merged)
            chapter[-1].recipients.append((chapter[-1].failing, None, [], None, None))
        next_id = 1
        for s in sends:  # in the order of the (mailing, email) index: it is built as they go in
            s.recipients.sort(key=lambda r: r[0].email)
            s.first_recipient, next_id = next_id, next_id + len(s.recipients)
        return sends

    def respond(self, send: Send, audience: list[Person]) -> None:
        """Each recipient's open, clicks and bounce, and the writebacks that come of them."""
        rng, rand, now, t, gone = self.rng, self.rng.random, self.now, send.sent, self.gone
        out: list[Recipient] = []
        bounce, unsub, interest = BOUNCE * self.scale, UNSUBSCRIBE * self.scale, INTEREST * self.scale
        payload: dict[str, Any]
        for p in audience:
            if gone.get(p.number, 2e9) < t:
                continue
            r = rand()
            if r >= OPEN:
                out.append((p, None, [], None, None))
            elif r < bounce:
                bounced = gone[p.number] = t + 20 + rand() * 600
                domain = p.email.partition("@")[2]
                reason = rng.choice(names.BOUNCE_REASONS).format(email=p.email, domain=domain)
                self.arrive(bounced, Kind.INVALID_EMAIL, send.account, p, {"reason": reason}, 0.9)
                out.append((p, None, [], bounced, reason))
            elif (opened := t + 60 + rng.expovariate(1 / 20_000)) > now:
                out.append((p, None, [], None, None))  # will open it later
            else:
                click = f"https://www.example.org/{rng.choice(LINKS)}", opened + 30 + rand() * 300
                out.append((p, opened, [click] if r < OPEN / 5 and click[1] < now else [], None, None))
                if r > OPEN - unsub:
                    gone[p.number] = opened + 40
                    self.left.append((opened + 40, p))
                    payload = {"reason": rng.choice(names.UNSUB_REASONS)}
                    self.arrive(opened + 40, Kind.UNSUBSCRIBE, send.account, p, payload, 0.9)
                elif r > OPEN - unsub - interest:
                    for k in range(rng.choice((1, 1, 2, 3))):
                        payload = {"interest": rng.choice(names.INTERESTS), "opted_in": rand() < 0.6}
                        self.arrive(opened + 90 + 20 * k, Kind.INTERESTS, send.account, p, payload, 0.9)
        send.recipients = out

    def arrive(self, at: float, kind: Kind, account: str, who: Person, payload: Any, with_id: float) -> None:
        """A writeback that happened at ``at`` reaches the queue a minute or two later, if it has yet;
        ``with_id`` is the chance that Informz gives the constituent id with it."""
        created, known = at + 20 + self.rng.expovariate(1 / 90), self.rng.random() < with_id
        if created <= self.now:
            known = known and who.master is not None
            self.arrivals.append(Arrival(created, at, kind, account, who, known, payload))

    def background(self, count: int, members: list[Person], prospects: list[Person]) -> None:
        """``count`` preference-centre writebacks, busier on weekdays and in office hours."""
        rng, rand, weights, total = self.rng, self.rng.random, [], 0.0
        for hour in range(DAYS * 24 + 1):
            wall = eastern(self.start + hour * 3600)
            total += DAILY[wall.weekday()] * HOURLY[wall.hour]
            weights.append(total)
            self.office.append(wall.weekday() < 5 and 9 <= wall.hour < 17)
        pick_kind, pick_account = seed._picker(rng, BACKGROUND), seed._picker(rng, names.ACCOUNTS)
        interests = [{"interest": i, "opted_in": k < 3} for i in names.INTERESTS for k in range(5)]
        reasons: list[dict[str, Any]] = [{"reason": r} for r in names.UNSUB_REASONS]
        self.left.sort(key=lambda left: left[0])
        wanted = len(self.arrivals) + count
        while len(self.arrivals) < wanted:
            at = self.start + bisect(weights, rand() * total) * 3600 + rand() * 3600
            kind: Kind = pick_kind()
            person = prospects[int(rand() * PROSPECTS)] if rand() < 0.01 else members[int(rand() * MEMBERS)]
            payload: dict[str, Any] = {}
            if kind is Kind.INTERESTS:
                payload = interests[int(rand() * len(interests))]
            elif kind is Kind.UNSUBSCRIBE:
                payload = reasons[int(rand() * len(reasons))]
            elif kind is Kind.INVALID_EMAIL:
                payload = {"reason": rng.choice(names.BOUNCE_REASONS[:3]).format(email=person.email)}
            elif self.left and self.left[0][0] < at and rand() < 0.7:  # a resubscribe, after an unsubscribe
                person = self.left[int(rand() * bisect(self.left, at, key=lambda left: left[0]))][1]
            self.arrive(at, kind, pick_account(), person, payload, WITH_ID)

    def failure(self, a: Arrival) -> Failure | None:
        """What the dispatcher records for this writeback, or None when Personify360 accepts it."""
        key = (a.person.number, a.with_id)
        if key not in self.failures:
            p, outcome = a.person, None
            if a.with_id and p.merged:
                when, master = datetime.fromtimestamp(a.occurred, UTC), p.master or ""
                who = (a.kind, "WB-0000000000", a.account, p.email, when, master, 0)
                outcome = self.answers.save(ActivitySource(*who, **a.payload))
            elif not a.with_id and (p.master is None or p.merged):
                outcome = self.answers.resolve(p.email, []), None, None
            elif not a.with_id and p.household:
                outcome = self.answers.resolve(p.email, p.household), None, None
            self.failures[key] = outcome
        found = self.failures[key]
        if found is None and a.kind is Kind.INTERESTS and self.code_off[0] <= a.created < self.code_off[1]:
            # The Save itself was refused while the code was inactive, whoever the writeback was for.
            return self.answers.inactive(a.kind)
        return found

    def decide(self, members: list[Person], prospects: list[Person], sends: list[Send]) -> list[Item]:
        """Everything else that happened, in the order the queue got it (the order of the ids)."""
        active = sends[-self.rows :] if self.rows < len(sends) else sends
        automatic = self.rows - len(active)
        if len(self.arrivals) > automatic:
            self.arrivals = self.rng.sample(self.arrivals, automatic)
        self.background(automatic - len(self.arrivals), members, prospects)
        for a in self.arrivals:
            a.failure = self.failure(a)
            # A row that fails has used its three attempts by the last run: it came a little earlier.
            if a.failure and self.last_run - 1800 < self.run_after(a.created) <= self.last_run:
                a.created, a.occurred = a.created - 1800, a.occurred - 1800
        for s in active:
            s.created = s.sent + 1800 + self.rng.random() * 3600
        items: list[Item] = sorted([*self.arrivals, *active], key=lambda item: item.created)
        for wid, item in enumerate(items, start=1):
            self.runs(wid, item)
            item.at, item.ref = self.t(item.created), self.refs()
            self.history(item)
        self.bulk_retry(items)
        if self.answers.probe:
            self.answers.probe.close()
        return items

    def history(self, item: Item) -> None:
        """What Personify360 holds of a row: a Sent writeback's activity (of the last 30 days), or the
        deliveries of a mailing whose activity failed or was sent in the last days."""
        if isinstance(item, Send) and item.status in (Status.SENT, Status.ERROR):
            self.delivered(item)
        elif isinstance(item, Arrival) and item.runs and not item.failure:
            a, end = item, item.runs[-1][1]
            if end > self.now - HISTORY_DAYS * 86400:
                what = (a.kind.value, a.ref, a.account, a.person.email, a.occurred, a.person.master)
                self.activities.append((len(self.activities) + 1, *what, a.payload, end))

    def bulk_retry(self, items: list[Item]) -> None:
        """Yesterday at about 10:20 an advisor opened the inactive code's reason from Top errors, narrowed
        the list to the Interests rows of the account with the most of them, and chose Retry all matching;
        the dispatcher's next run sent them. What the retry wrote is ``operations.act_on_matching``'s: one
        audit entry per batch, with the list's filter; each row New, granted one more attempt."""
        reason = error_reason(self.answers.inactive(Kind.INTERESTS)[0])
        at = at_eastern(eastern(self.last_run) - timedelta(days=1), 10, 20) + self.rng.random() * 60
        retryable = [
            a
            for a in items
            if isinstance(a, Arrival) and a.kind is Kind.INTERESTS and a.failure
            and len(a.runs) == DEFAULT_MAX_ATTEMPTS and a.runs[-1][1] < at
            and error_reason(a.failure[0]) == reason
        ]  # fmt: skip
        if not retryable:
            return
        by_account = Counter(a.account for a in retryable)
        account = max(sorted(by_account), key=by_account.__getitem__)
        flt = WritebackFilter(
            statuses=frozenset({Status.ERROR}),
            kinds=frozenset({Kind.INTERESTS}),
            accounts=frozenset({account}),
            error_text=reason,
        )
        self.retry_filter = {**json.loads(json.dumps(flt.to_json())), "matching": True}
        rows = [a for a in retryable if a.account == account]  # in id order, as each batch is chosen
        for first in range(0, len(rows), RETRY_BATCH):
            self.retries.append((at, rows[first : first + RETRY_BATCH]))
            for a in self.retries[-1][1]:
                a.retried = at
            at += 0.05  # a batch is one transaction
        for a in rows:
            start = self.run_after(a.retried) + self.rng.random() * 20
            end = start + 0.05 + self.rng.random() * 0.4
            a.resent = (start, end, self.dispatcher_at(start), self.t(start), self.t(end))
            what = (a.kind.value, a.ref, a.account, a.person.email, a.occurred, a.person.master)
            self.activities.append((len(self.activities) + 1, *what, a.payload, end))

    def dispatcher_at(self, start: float) -> str:
        """Who ran the run that started at ``start``: in office hours the console on Ann's laptop ran a
        third of them."""
        office = self.office[int((start - self.start) // 3600)] if self.office else False
        return CONSOLE if office and int(start // INTERVAL) % 3 == 0 else HEADLESS

    def run_after(self, moment: float) -> float:
        """When the run that claims a row that arrived at ``moment`` starts."""
        return (moment - 7) // INTERVAL * INTERVAL + INTERVAL + 7

    def runs(self, wid: int, item: Item) -> None:
        """The dispatcher's attempts at a row: none after its last run, three for a failure."""
        rand = self.rng.random
        if isinstance(item, Send):
            s = item
            s.id_in_queue, s.scheduled = wid, at_eastern(eastern(s.sent) + timedelta(days=3), 6)
            if self.last_run < s.scheduled < self.now + 1800:
                s.scheduled += 86400  # never due before the console's first run
            if s.fate is Status.CANCELLED:
                s.cancelled = min(s.created + 3600 + rand() * 20_000, s.scheduled - 600)
            if s.scheduled <= self.last_run or s.fate is Status.CANCELLED:
                s.status = s.fate
            if s.status is Status.ERROR and s.failing and s.failing.master:
                who = (s.name, s.id, s.account, s.sent, s.failing.email, s.failing.master)
                clicks: list[tuple[str, float]] = []
                answer = self.answers.save(_recipient(*who, None, clicks, None, None, "WB-000000000000"))
                assert answer is not None, "a merged-away record is unknown to Personify360"
                known, s.reason = sum(1 for r in s.recipients if r[0].master), answer[0]
                s.failure = (f"{mailing_activity_error(known, known - 1)} (first: {answer[0]})", *answer[1:])
            if s.status in (Status.SCHEDULED, Status.CANCELLED):
                return
            start, took = self.run_after(s.scheduled) + rand() * 5, 0.5 + 0.003 * len(s.recipients)
        else:
            item.id, start, took = wid, self.run_after(item.created) + rand() * 20, 0.05
            if start > self.last_run:
                return
        for _ in range(DEFAULT_MAX_ATTEMPTS if item.failure else 1):
            end = start + took + rand() * 0.4
            item.runs.append((start, end, self.dispatcher_at(start), self.t(start), self.t(end)))
            start, took = start + INTERVAL, 0.05

    # --------------------------------------------------------------------------------------- the rows

    def queue_parts(self, items: list[Item]) -> list[Part]:
        """The writebacks, their attempts, the mailings' deliveries and the staff's audit entries."""
        t, pay, rest = self.t, self.payload, {**AT_REST, **NO_MAILING}
        new = part_of(m.Writeback, WHO, rest, status="new", attempts=0, lease_token=0, changed_by=IMPORTER)
        new.constants["last_http_status"] = None
        sent = part_of(
            m.Writeback, f"{WHO} sent_at changed_by", rest, status="sent", attempts=1, lease_token=1
        )
        sent.constants["last_http_status"] = 200
        again = {"attempts": DEFAULT_MAX_ATTEMPTS + 1, "max_attempts": DEFAULT_MAX_ATTEMPTS + 1}
        resent = part_of(m.Writeback, " ".join(sent.columns), sent.constants, **again)
        resent.constants["lease_token"] = DEFAULT_MAX_ATTEMPTS + 1
        failed = f"{WHO} next_attempt_at last_error last_http_status changed_by"
        error = part_of(m.Writeback, failed, rest, status="error", attempts=3, lease_token=3)
        columns = " ".join(c for c in columns_of(m.Writeback) if c not in AT_REST)
        self.mailing = part_of(m.Writeback, columns, AT_REST)
        saved = {"number": 1, "outcome": "sent", "counted": True, "http_status": 200, "message": "saved"}
        tried = part_of(m.Attempt, "writeback_id started_at finished_at dispatcher", saved, manual=False)
        tried.constants["response_excerpt"] = None
        columns = "writeback_id number started_at finished_at outcome http_status message response_excerpt"
        self.tries = part_of(m.Attempt, f"{columns} dispatcher", {"counted": True, "manual": False})
        # The attempt a person's retry granted: manual, as the claim marks one beyond the automatic ones.
        granted = part_of(m.Attempt, " ".join(tried.columns), tried.constants, manual=True)
        granted.constants["number"] = DEFAULT_MAX_ATTEMPTS + 1
        self.audit = part_of(
            m.AuditEvent, "id at action detail", {"actor": STAFF, "row_count": 1}, filter=None
        )
        self.notes = part_of(m.AuditEventRow, "event_id writeback_id ref", {})
        for a in items:
            if isinstance(a, Send):
                self.mailing_writeback(a)
                continue
            p = a.person
            master, head = p.master if a.with_id else None, (a.id, a.ref, a.kind.value, a.account, p.email)
            if not a.runs:
                new.rows.append((*head, master, master and 0, pay(a.payload), t(a.occurred), a.at, a.at))
                continue
            by, ended = a.runs[-1][2], a.runs[-1][4]
            if a.resent is not None and a.failure:  # failed three times, a person retried it, then sent
                self.attempts(a.id, a.runs, "error", a.failure)
                _, _, by, started, ended = a.resent
                granted.rows.append((a.id, started, ended, by))
                resent.rows.append(
                    (*head, p.master, 0, pay(a.payload), t(a.occurred), a.at, ended, ended, by)
                )
                continue
            if a.failure is None:  # the constituent an email led to is kept with the row
                tried.rows.append((a.id, a.runs[0][3], ended, by))
                sent.rows.append((*head, p.master, 0, pay(a.payload), t(a.occurred), a.at, ended, ended, by))
                continue
            self.attempts(a.id, a.runs, "error", a.failure)
            row = (*head, master, master and 0, pay(a.payload), t(a.occurred), a.at, ended)
            error.rows.append((*row, ended, a.failure[0], a.failure[1], by))
        retry = {"actor": ADVISOR, "action": "retry", "filter": self.j(self.retry_filter)}
        retried = part_of(m.AuditEvent, "id at row_count", retry, detail=self.j({"granted_attempts": 1}))
        for at, batch in self.retries:
            retried.rows.append((len(self.audit.rows) + len(retried.rows) + 1, t(at), len(batch)))
            self.notes.rows.extend((retried.rows[-1][0], a.id, a.ref) for a in batch)
        parts = [
            *(new, sent, resent, error, self.mailing, tried, self.tries, granted, self.deliveries),
            *(self.audit, retried, self.notes),
        ]
        return [*parts, self.dispatcher_runs(items)]

    def dispatcher_runs(self, items: list[Item]) -> Part:
        """The dispatcher's runs of the last 30 days as ``dispatcher_run`` records them, with the queue as
        each began: New, Scheduled and due, Error with attempts left, and the oldest of them (for the
        dashboard's queue-depth chart; the runs before are not kept)."""
        first = self.last_run - HISTORY_DAYS * 86400
        grid = [first + k * INTERVAL for k in range(int((self.last_run - first) // INTERVAL) + 1)]
        # What waits, and from when until which run claims it: (from, until, which count, queued at).
        waits: list[tuple[float, float, int, float]] = []
        done: dict[int, list[int]] = {}  # per run: claimed, sent, failed
        for item in items:
            queued = item.created
            if isinstance(item, Send):
                if item.cancelled:
                    continue
                waits.append((item.scheduled, item.runs[0][0] if item.runs else math.inf, 1, queued))
            else:
                waits.append((queued, item.runs[0][0] if item.runs else math.inf, 0, queued))
            for n, (started, ended, *_rest) in enumerate(item.runs):
                k = bisect(grid, started) - 1
                if k >= 0:
                    counts = done.setdefault(k, [0, 0, 0])
                    counts[0] += 1
                    counts[1 if item.failure is None else 2] += 1  # a failing row fails every attempt
                if item.failure is not None and n + 1 < len(item.runs):
                    waits.append((ended, item.runs[n + 1][0], 2, queued))
        waits.sort()
        columns = "id dispatcher started_at finished_at summary claimed sent failed"
        columns += " waiting_new waiting_scheduled waiting_error oldest_waiting_at"
        runs = part_of(m.DispatcherRun, columns, {"db_user": None, "result": "ok"}, interval_seconds=INTERVAL)
        waiting: list[tuple[float, float, int]] = []  # (queued at, until, which) of what waits now
        i = 0
        for k, start in enumerate(grid):
            while i < len(waits) and waits[i][0] <= start:
                _since, until, which, queued = waits[i]
                waiting.append((queued, until, which))
                i += 1
            waiting = [w for w in waiting if w[1] > start]
            counts = [0, 0, 0]
            for _queued, _until, which in waiting:
                counts[which] += 1
            oldest = min((w[0] for w in waiting), default=None)
            claimed, sent, failed = done.get(k, [0, 0, 0])
            office = self.office[int((start - self.start) // 3600)] if self.office else False
            by = CONSOLE if office and int(start // INTERVAL) % 3 == 0 else HEADLESS
            said = f"{claimed} claimed: {sent} sent, {failed} failed" if claimed else "nothing to send"
            ended = self.t(start + 0.4 + 0.06 * claimed)
            row = (k + 1, by, self.t(start), ended, said, claimed, sent, failed, *counts)
            runs.rows.append((*row, None if oldest is None else self.t(oldest)))
        return runs

    def attempts(self, wid: int, runs: list[Run], outcome: str, answer: tuple[Any, Any, Any]) -> None:
        for n, (_, _, by, started, ended) in enumerate(runs, start=1):
            self.tries.rows.append((wid, n, started, ended, outcome, answer[1], answer[0], answer[2], by))

    def mailing_writeback(self, s: Send) -> None:
        """A mailing's activity, as staff scheduled it and the dispatcher sent it (or staff cancelled it)."""
        t, ref, status, wid = self.t, s.ref, s.status.value, s.id_in_queue
        detail = {"mailing_id": s.id, "scheduled_for": self._aware_t(s.scheduled).isoformat()}
        self.audited(wid, ref, s.created, "schedule", detail)
        if s.cancelled:
            self.audited(wid, ref, s.cancelled, "cancel", detail)
        nothing = (NO_REMOTE if status == "no_remote_recipients" else None, None, None)
        self.attempts(wid, s.runs, status, s.failure or nothing)
        updated, by = (s.runs[-1][1], s.runs[-1][2]) if s.runs else (s.cancelled or s.created, STAFF)
        message, http, _ = s.failure or (None, None, None)
        done, n = t(updated), len(s.runs)
        values = {"id": wid, "ref": ref, "kind": "mailing_activity", "account": s.account, "mailing_id": s.id}
        values |= dict.fromkeys(("email", "master_customer_id", "sub_customer_id"))
        values |= {"payload": self.j({"mailing_name": s.name}), "occurred_at": t(s.sent), "status": status}
        values |= {"attempts": n, "lease_token": n, "scheduled_for": t(s.scheduled), "created_at": s.at}
        values |= {"next_attempt_at": s.failure and done, "sent_at": done if status == "sent" else None}
        values |= {"last_error": message, "last_http_status": http, "updated_at": done, "changed_by": by}
        self.mailing.rows.append(tuple(values[c] for c in self.mailing.columns))

    def audited(self, wid: int, ref: str, at: float, action: str, detail: dict[str, Any]) -> None:
        self.audit.rows.append((len(self.audit.rows) + 1, self.t(at), action, self.j(detail)))
        self.notes.rows.append((len(self.audit.rows), wid, ref))

    def delivered(self, s: Send) -> None:
        """One delivery per recipient known in Personify360, and the activity of each that arrived."""
        end = s.runs[0][1]
        if s.status is Status.SENT and end < self.now - MAILING_HISTORY_DAYS * 86400:
            return
        ended, pairs, out, wid = self.t(end), seed._Refs.PAIRS, self.deliveries.rows, s.id_in_queue
        for number, (p, opened, clicks, bounced, reason) in enumerate(s.recipients, start=s.first_recipient):
            if p.master is None:
                continue
            ref = self.refs() + pairs[self.rng.getrandbits(10)]  # a recipient's: WB- and 12 characters
            if p is s.failing:  # the one Personify360 does not know
                out.append((wid, number, ref, "error", 3, None, None, s.reason, self.t(s.runs[-1][1])))
                continue
            facts = (s.name, s.id, s.account, s.sent, p.email, p.master, opened, clicks, bounced, reason, ref)
            self.activities.append((len(self.activities) + 1, *facts, end))
            out.append((wid, number, ref, "sent", 1, ended, str(len(self.activities)), None, ended))

    def mailing_parts(self, sends: list[Send]) -> list[Part]:
        """The mailings and their recipients (most share the sub id, the times, the clicks)."""
        t, j, empty = self.t, self.j, self.j([])
        parts = [part_of(m.Mailing, " ".join(columns_of(m.Mailing)), {})]
        for s in sends:
            sent, first, known = t(s.sent), s.first_recipient, s.fate is not Status.NO_REMOTE_RECIPIENTS
            mailing_id = str(4_810_000 + 37 * s.id)
            parts[0].rows.append((s.id, s.account, s.name, s.name, mailing_id, sent, t(s.sent - 2e5)))
            shared = {"mailing_id": s.id, "sent_at": sent, "blocked": False}
            who = "id email master_customer_id sub_customer_id" if known else "id email"
            plain = part_of(m.MailingRecipient, who, shared, master_customer_id=None, sub_customer_id=None)
            plain.constants["opened_at"] = None
            plain.constants |= {"clicks": empty, "bounced_at": None, "bounce_reason": None}
            engaged = part_of(m.MailingRecipient, f"{who} opened_at clicks bounced_at bounce_reason", shared)
            for n, (p, opened, clicks, bounced, reason) in enumerate(s.recipients, first):
                identity = (n, p.email, p.master, p.master and 0)[: 2 + 2 * known]
                if opened is None and bounced is None:
                    plain.rows.append(identity)
                    continue
                moments = j([{"url": u, "at": self._aware_t(at).isoformat()} for u, at in clicks])
                events = (opened and t(opened), moments, bounced and t(bounced), reason)
                engaged.rows.append((*identity, *events))
            parts += [plain, engaged]
        return parts

    def event_parts(self, items: list[Item]) -> list[Part]:
        """Every row's status history. A row's events are read in id order: all rows' first events come
        first, then their first claims, first outcomes, second claims and so on."""
        e, end = m.WritebackEvent, "writeback_id to_status at actor"
        claim = "writeback_id from_status at actor"
        queued = part_of(e, end, {"from_status": None, "attempt": 0})
        cancel = {"from_status": "scheduled", "to_status": "cancelled", "actor": STAFF, "attempt": 0}
        cancelled = part_of(e, "writeback_id at", cancel)
        claims = [part_of(e, claim, {"to_status": "processing", "attempt": n}) for n in (1, 2, 3)]
        ends = [part_of(e, end, {"from_status": "processing", "attempt": n}) for n in (1, 2, 3)]
        # A person's retry and the attempt it granted come after the three automatic ones.
        used = DEFAULT_MAX_ATTEMPTS
        retry = {"from_status": "error", "to_status": "new", "actor": ADVISOR, "attempt": used}
        retried = part_of(e, "writeback_id at", retry)
        reclaimed = part_of(e, "writeback_id at actor", {"from_status": "new", "to_status": "processing"})
        resent = part_of(e, "writeback_id at actor", {"from_status": "processing", "to_status": "sent"})
        reclaimed.constants["attempt"] = resent.constants["attempt"] = used + 1
        for item in items:
            if isinstance(item, Send):
                wid, first, after = item.id_in_queue, "scheduled", item.status.value
                queued.rows.append((wid, first, item.at, STAFF))
                if item.cancelled:
                    cancelled.rows.append((wid, self.t(item.cancelled)))
            else:
                wid, first, after = item.id, "new", "error" if item.failure else "sent"
                queued.rows.append((wid, first, item.at, IMPORTER))
            for n, (_, _, by, started, ended) in enumerate(item.runs):
                claims[n].rows.append((wid, "error" if n else first, started, by))
                ends[n].rows.append((wid, after, ended, by))
            if isinstance(item, Arrival) and item.resent is not None:
                _, _, by, started, ended = item.resent
                retried.rows.append((wid, self.t(item.retried)))
                reclaimed.rows.append((wid, started, by))
                resent.rows.append((wid, ended, by))
        pairs = (part for pair in zip(claims, ends, strict=True) for part in pair)
        return [queued, cancelled, *pairs, retried, reclaimed, resent]


def _recipient(
    name: str, mailing: int, account: str, sent: float, email: str, master: str, opened: float | None,
    clicks: list[tuple[str, float]], bounced: float | None, reason: str | None, ref: str,
) -> ActivitySource:  # fmt: skip
    """What one recipient's activity is made from, as ``deliveries.prepare_deliveries`` gives it."""
    when, moments = _when(sent), tuple((u, _when(c)) for u, c in clicks)
    facts = MailingFacts(name, mailing, when, _when(opened), moments, _when(bounced), reason)
    return ActivitySource(Kind.MAILING_ACTIVITY, ref, account, email, when, master, 0, mailing=facts)


# ------------------------------------------------------------------------------------------- writing


def write_simulator(path: Path, members: list[Person], activities: Callable[[], list[Row]]) -> Counts:
    """The members (as ``Database.add_constituents`` stores them, in two statements), then the activities
    the dispatcher wrote (``activities`` may wait for them), into the simulator's database."""
    loaded = f"'{store.LOADER_OPER}', '{store.now_stored()}'"
    known = sorted((p for p in members if not p.merged and p.master), key=lambda p: p.master or "")
    mapping, operator, rows = ActivityMapping(), literal(AppSettings().operator), []
    database = store.Database(path)
    try:
        with database.connection() as conn:
            conn.execute("PRAGMA journal_mode = DELETE")  # a bulk load: the simulator goes back to WAL
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO CUSTOMER (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, LABEL_NAME, FIRST_NAME,"
                " LAST_NAME, RECORD_TYPE, ADDOPER, ADDDATE, MODOPER, MODDATE)"
                f" VALUES (?, 0, ?, ?, ?, 'I', {loaded}, {loaded})",
                [(p.master, f"{p.first} {p.last}", p.first, p.last) for p in known],
            )
            conn.executemany(
                "INSERT INTO CUS_COMMUNICATION (MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, COMM_TYPE_CODE,"
                " PRIMARY_FLAG, COMM_LOCATION_CODE, FORMATTED_PHONE_ADDRESS, ADDOPER, ADDDATE, MODOPER,"
                f" MODDATE) VALUES (?, 0, 'EMAIL', ?, 'WORK', ?, {loaded}, {loaded})",
                [(p.master, "N" if p.household else "Y", p.email) for p in known],
            )
            for activity_id, *what, saved in activities():
                if len(what) == 11:
                    source = _recipient(*what)
                else:
                    kind, ref, account, email, occurred, master, payload = what
                    who = (Kind(kind), ref, account, email, _when(occurred), master, 0)
                    source = ActivitySource(*who, **payload)
                f, stamp = build_activity(source, mapping), datetime_to_storage(_when(saved))
                code, subcode, when = f["ActivityCode"], f.get("ActivitySubcode"), f["ActivityDate"]
                text = f["ActivityText"]
                rows.append((activity_id, f["MasterCustomerId"], code, subcode, when, text, stamp))
            conn.executemany(
                "INSERT INTO CUS_ACTIVITY (ACTIVITY_ID, MASTER_CUSTOMER_ID, SUB_CUSTOMER_ID, ACTIVITY_CODE,"
                " ACTIVITY_SUBCODE, ACTIVITY_DATE, ACTIVITY_TEXT, ADDOPER, ADDDATE, MODOPER, MODDATE)"
                f" VALUES (?, ?, 0, ?, ?, ?, ?, {operator}, ?7, {operator}, ?7)",
                [(*r[:4], datetime_to_storage(r[4]), *r[5:]) for r in rows],
            )
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL")
    finally:
        database.close()
    return len(known), len(rows)


# ------------------------------------------------------------------------------------ the whole demo


def seed_realistic(
    engine: Engine,
    simulator: Path | None,
    rows: int = DEFAULT_ROWS,
    *,
    random_seed: int = 20261127,
    now: datetime | None = None,
    schema: Callable[[], None] | None = None,
) -> tuple[seed.SeedSummary, int, int]:
    """Build the demo; write the queue and (unless ``simulator`` is None) the simulator's database.

    ``schema`` makes the queue's tables. Where there is fork (and the queue is SQLite) the two cores
    share the work: as soon as the people are drawn, a process makes the schema and the simulator's
    members (its activities follow once the writebacks are made); once everything is decided, another
    makes the recipients and the status history into a scratch file, which the queue copies in one
    statement a table. The same arguments give the same rows.
    Returns the queue's summary, and the simulator's constituents and activities.
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    collecting = gc.isenabled()
    gc.disable()  # the build makes millions of small tuples, which the collector would walk again and again
    try:
        return _seed(engine, simulator, rows, random_seed, now, schema)
    finally:
        if collecting:
            gc.enable()


def _seed(
    engine: Engine, simulator: Path | None, rows: int, random_seed: int, now: datetime | None, schema: Any
) -> tuple[seed.SeedSummary, int, int]:
    started, sqlite = utcnow(), engine.dialect.name == "sqlite"
    demo = _Demo(rows, random_seed, now or utcnow(), sqlite)
    members, prospects = demo.people()
    # Forking is safe only while this process has no other thread (one could hold a lock the child needs,
    # and a console's Qt threads certainly would): otherwise the same rows are made one after another.
    alone = threading.active_count() == 1
    if "fork" in mp.get_all_start_methods() and simulator is not None and sqlite and alone:
        first = Fork(_simulator_job, engine, schema, members, simulator)
        sends = demo.mailings(members, prospects)
        items = demo.decide(members, prospects, sends)
        staged = simulator.with_name("staging.sqlite3")
        # Sent from a thread: the pipe takes it only as fast as the other process reads.
        threading.Thread(target=first.channel.send, args=(demo.activities,), daemon=True).start()
        second = Fork(_stage_job, demo, sends, items, staged)
        parts = demo.queue_parts(items)
        if schema is not None:
            first.wait_for("schema")
        write_queue(engine, parts, lambda: second.result() or staged)
        staged.unlink()
        people, activities = first.result()
    else:
        if schema is not None:
            schema()
        sends = demo.mailings(members, prospects)
        items = demo.decide(members, prospects, sends)
        parts = demo.mailing_parts(sends) + demo.queue_parts(items) + demo.event_parts(items)
        write_queue(engine, parts)
        people = activities = 0
        if simulator is not None:
            people, activities = write_simulator(simulator, members, lambda: demo.activities)
    writebacks, tries = (sum(len(p.rows) for p in parts if p.model is x) for x in (m.Writeback, m.Attempt))
    recipients, seconds = sum(len(s.recipients) for s in sends), (utcnow() - started).total_seconds()
    return seed.SeedSummary(writebacks, tries, len(sends), recipients, seconds), people, activities


def _simulator_job(channel: Any, engine: Engine, schema: Any, members: list[Person], path: Path) -> Any:
    """The first helper process: the queue's schema, then the simulator's database."""
    if schema is not None:
        engine.dispose(close=False)  # connections of the parent are not this process's to use
        schema()
        engine.dispose()  # the queue is the parent's now: it switches the journal, which needs it alone
        channel.send(("schema", None))
    return write_simulator(path, members, channel.recv)


def _stage_job(channel: Any, demo: _Demo, sends: list[Send], items: list[Item], path: Path) -> None:
    """The second helper process: the recipients and the status history, to a scratch file."""
    stage(path, demo.mailing_parts(sends) + demo.event_parts(items))
