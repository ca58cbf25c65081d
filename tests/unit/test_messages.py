"""Messages: every layer's errors become the right words for a user, and no secret reaches them."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError, OperationalError

from writeback_console.messages import describe_exception, exception_details, scrub
from writeback_console.personify.errors import ErrorKind, PersonifyError


def message_for(exc: BaseException) -> str:
    return describe_exception(exc)[0]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            PersonifyError(ErrorKind.AUTH, "Forbidden", status=403),
            "Personify360 refused access: the user may not use this service. Check the user in Settings.",
        ),
        (
            PersonifyError(
                ErrorKind.TIMEOUT, "connecting to pds.example.org took longer than 5 s", during_connect=True
            ),
            "Personify360 could not be reached: connecting to pds.example.org took longer than 5 s.",
        ),
        (
            PersonifyError(ErrorKind.TLS, "certificate verify failed: self-signed certificate"),
            "The secure connection to Personify360 failed: "
            "certificate verify failed: self-signed certificate.",
        ),
        (
            PersonifyError(ErrorKind.DROPPED, "the connection was reset"),
            "Personify360 closed the connection early (the connection was reset). Try again.",
        ),
        (
            PersonifyError(
                ErrorKind.NOT_FOUND, "Resource not found for the segment 'CusActivitys'", status=404
            ),
            "Personify360 does not know what was asked for (Resource not found for the segment "
            "'CusActivitys'); check the service root URL.",
        ),
        (
            PersonifyError(ErrorKind.SERVER, "Object reference not set to an instance", status=500),
            "Personify360 reported an internal error: Object reference not set to an instance.",
        ),
        (
            PersonifyError(ErrorKind.MALFORMED, "the answer was empty", status=200),
            "Personify360 answered with something unexpected: the answer was empty.",
        ),
    ],
    ids=lambda v: v.kind.name if isinstance(v, PersonifyError) else "",
)
def test_each_kind_of_personify_failure_is_told_in_its_own_words(error: PersonifyError, message: str) -> None:
    assert message_for(error) == message


@pytest.mark.parametrize("detail", ["Activity Code 'X' is inactive.", "Is the code set up?", "Wait!"])
def test_a_server_message_that_ends_its_sentence_gets_no_second_full_stop(detail: str) -> None:
    assert message_for(PersonifyError(ErrorKind.VALIDATION, detail, status=400)) == (
        f"Personify360 refused the request: {detail}"
    )


def test_a_busy_database_is_named_by_the_first_line_of_its_reason_and_the_user_told_to_try_again() -> None:
    locked = OperationalError("UPDATE writeback SET ...", {}, Exception("database is locked\nretry: 3"))
    assert message_for(locked) == (
        "The queue database is not reachable or is busy (database is locked). "
        "Try again in a moment; if it persists, check the database connection."
    )


def test_a_statement_the_database_refuses_is_told_to_have_changed_nothing() -> None:
    refused = IntegrityError("INSERT INTO writeback ...", {}, Exception("UNIQUE constraint failed: ref"))
    assert message_for(refused) == "The queue database refused the operation. Nothing was changed."


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("the file holds no writebacks"), "The file holds no writebacks."),
        (ValueError(), "ValueError."),
        (
            FileNotFoundError(2, "No such file or directory", "in.jsonl"),
            "[Errno 2] No such file or directory: 'in.jsonl'.",
        ),
        (KeyError("kind"), "Something unexpected went wrong (KeyError: 'kind')."),
    ],
)
def test_other_errors_are_their_own_sentence_or_name_their_type(error: Exception, message: str) -> None:
    assert message_for(error) == message


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "could not connect to postgresql://writeback:hunter2@db.example.org/queue",
            "could not connect to postgresql://writeback:***@db.example.org/queue",
        ),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
        ("Proxy-Authorization: Basic c3ZjOmh1bnRlcjI=", "Proxy-Authorization: Basic ***"),
        ('{"user": "svc", "password": "hunter2"}', '{"user": "svc", "password": "***"}'),
        ("password='hunter2' rejected", "password='***' rejected"),
        ("PASSWORD: hunter2", "PASSWORD: ***"),
    ],
)
def test_passwords_in_urls_headers_and_fields_are_replaced(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed


@given(st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from("é€–…\u00a0"), max_size=200))
def test_text_that_names_no_secret_is_left_exactly_as_it_was(text: str) -> None:
    lowered = text.lower()
    assume("password" not in lowered and "authorization" not in lowered and "://" not in text)
    assert scrub(text) == text


def test_a_secret_anywhere_in_a_personify_error_is_in_neither_the_message_nor_the_details() -> None:
    error = PersonifyError(
        ErrorKind.CONNECTION,
        "could not connect to https://svc:hunter2@pds.example.org/PersonifyData.svc",
        excerpt="echoed: Authorization: Basic c3ZjOmh1bnRlcjI=",
    )
    message, details = describe_exception(error)
    assert "hunter2" not in message + details and "c3ZjOmh1bnRlcjI" not in details
    assert "https://svc:***@pds.example.org" in message
    assert "Response excerpt:\necho" in details


def test_the_details_say_what_was_raised_where_with_status_only_when_there_is_one() -> None:
    def save_activity() -> None:
        raise PersonifyError(ErrorKind.SERVER, "boom", status=500, excerpt="<error>boom</error>")

    with pytest.raises(PersonifyError) as info:
        save_activity()
    details = exception_details(info.value)
    assert details.splitlines()[:4] == [
        "Type: writeback_console.personify.errors.PersonifyError",
        "Message: HTTP 500: boom",
        "Kind: SERVER",
        "HTTP status: 500",
    ]
    assert re.search(r"Traceback \(most recent call last\):.*in save_activity", details, re.S)
    assert "HTTP status" not in exception_details(PersonifyError(ErrorKind.DROPPED, "reset"))


def test_a_service_that_says_it_is_unavailable_is_not_told_as_an_unexpected_answer() -> None:
    message = message_for(PersonifyError(ErrorKind.UNAVAILABLE, "Service Unavailable", status=503))
    assert "Service Unavailable" in message
    assert "unexpected" not in message


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        (ErrorKind.NOT_SENT, "not sent: another dispatcher holds this writeback now"),
        (ErrorKind.REQUEST, "the request could not be made: ValueError: bad header"),
    ],
)
def test_a_request_that_never_left_is_not_told_as_an_answer_from_personify(
    kind: ErrorKind, detail: str
) -> None:
    message = message_for(PersonifyError(kind, detail, sent=False))
    assert detail in message
    assert "answered" not in message


@pytest.mark.parametrize(
    "text", ['{"password": "correct horse battery"}', "password='correct horse, battery'"]
)
def test_a_quoted_password_with_spaces_or_commas_is_replaced_whole(text: str) -> None:
    scrubbed = scrub(text)
    assert "horse" not in scrubbed and "battery" not in scrubbed


def test_a_url_password_without_a_user_name_is_replaced() -> None:
    assert "hunter2" not in scrub("could not connect to postgresql://:hunter2@db.example.org/queue")
