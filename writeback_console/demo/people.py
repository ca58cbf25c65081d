"""Who and what the demo queue is about: accounts, people, reasons, mailing topics, and the failures
Personify360 answers with — the same person for the same number, so the demo's simulator can be given
exactly the constituents the queue refers to."""

from __future__ import annotations

from dataclasses import dataclass

from writeback_console.domain import Kind

ACCOUNTS = (("Main", 70), ("Foundation", 20), ("Chapters", 10))


FIRST = (
    "Ann James Maria Robert Linda Michael Patricia David Jennifer William Elizabeth Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Sandra Donald Ashley "
    "Steven Emily Paul Donna Andrew Michelle Joshua Carol Kenneth Amanda Kevin Melissa Brian Deborah "
    "George Stephanie Timothy Rebecca Ronald Laura Jason Helen Edward Sharon Jeffrey Cynthia Ryan Kathleen "
    "Jacob Amy Gary Angela Nicholas Shirley Eric Anna Jonathan Ruth Stephen Brenda Larry Pamela Justin"
).split()


LAST = (
    "Lee Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Perez Thompson White Harris Sanchez Clark Ramirez "
    "Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker "
    "Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards "
    "Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey"
).split()


DOMAINS = (
    "example.org example.com members.example.net chapter.example.org mail.example.com "
    "alumni.example.edu hospital.example.org firm.example.com"
).split()


UNSUB_REASONS = (
    "I no longer wish to receive these emails",
    "Too many emails",
    "The content is not relevant to me",
    "I never signed up for this list",
    "Unsubscribed from the preference center",
    "Marked as spam in the mail client (feedback loop)",
)


BOUNCE_REASONS = (
    "550 5.1.1 The email account that you tried to reach does not exist",
    "550 5.1.1 <{email}>: Recipient address rejected: User unknown in virtual mailbox table",
    "552 5.2.2 Mailbox full",
    "554 5.7.1 Message rejected as spam by content filter",
    "Domain {domain} has no MX record",
)


INTERESTS = (
    "Annual Conference",
    "Continuing Education",
    "Advocacy Alerts",
    "Chapter News",
    "Member Benefits",
    "Journal Table of Contents",
    "Career Center",
    "Volunteer Opportunities",
)


MAILING_TOPICS = (
    "Weekly Member Update",
    "Annual Conference: Early Registration",
    "Renewal Reminder",
    "Advocacy Alert",
    "Journal Table of Contents",
    "Webinar Invitation",
    "Chapter Newsletter",
    "Year-End Giving Appeal",
    "Certification Deadline",
    "Career Center Digest",
)


@dataclass(frozen=True)
class Failure:
    http_status: int | None
    message: str
    excerpt: str | None


CODES = {
    Kind.UNSUBSCRIBE: "INFORMZ_UNSUB",
    Kind.RESUBSCRIBE: "INFORMZ_RESUB",
    Kind.INVALID_EMAIL: "INFORMZ_BADEMAIL",
    Kind.MAILING_ACTIVITY: "INFORMZ_MAILING",
    Kind.INTERESTS: "INFORMZ_IPM",
}


def failures_for(kind: Kind, email: str | None, master: str | None, recipients: int = 0) -> list[Failure]:
    """Believable reasons for a failed writeback, with what Personify360 answered."""
    master = master or "000000004711"
    common = [
        Failure(
            500,
            "Timeout expired. The timeout period elapsed prior to completion of the operation "
            "or the server is not responding.",
            '{"error":{"code":"","message":{"lang":"en-US","value":"An error occurred while '
            'processing this request."},"innererror":{"message":"Timeout expired."}}}',
        ),
        Failure(
            400,
            f"Validation issues: Activity code {CODES[kind]} is not active for subsystem CUS.",
            '{"error":{"code":"","message":{"lang":"en-US","value":"Validation issues"},'
            f'"innererror":{{"internalexception":{{"message":"Activity code {CODES[kind]} is not active '
            'for subsystem CUS."}}}}',
        ),
        # Only failures of the row itself use attempts; a refused connection or a 503 page means
        # Personify360 as a whole was unavailable, which costs none.
        Failure(None, "no answer from Personify360 within 30 s (read timeout)", None),
        Failure(None, "the connection to Personify360 was closed before the answer was complete", None),
    ]
    if kind is Kind.MAILING_ACTIVITY:
        total = max(recipients, 1)
        return [*common, Failure(None, f"{total // 3 + 1:,} of {total:,} recipients failed", None)]
    return [
        *common,
        Failure(
            400,
            f"Validation issues: Customer {master}-0 does not exist.",
            '<error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"><code/>'
            f'<message xml:lang="en-US">Validation issues</message><innererror><message>Customer {master}'
            "-0 does not exist.</message></innererror></error>",
        ),
        Failure(None, f"no Personify360 constituent has the email {email}", None),
        Failure(
            None,
            f"2 Personify360 constituents share the email {email} and none is primary: "
            f"{master}-0, {int(master) + 7:012d}-0",
            None,
        ),
    ]


def constituent_id(n: int) -> str:
    return f"{n:012d}"


def person(n: int) -> tuple[str, str, str]:
    """Constituent number n's first name, last name and email: the same n always gives the same person,
    so the demo's Personify360 simulator can be given exactly the constituents the queue refers to."""
    first = FIRST[n % len(FIRST)]
    last = LAST[(n // len(FIRST)) % len(LAST)]
    return first, last, f"{first.lower()}.{last.lower()}{n}@{DOMAINS[(n // 7) % len(DOMAINS)]}"
