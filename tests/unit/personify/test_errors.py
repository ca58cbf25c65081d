"""Unit tests for reading WCF error documents, error kinds and keeping credentials out of errors."""

from __future__ import annotations

import base64
import json
import pickle
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from writeback_console.personify.errors import (
    MAX_ERROR_BODY,
    ErrorKind,
    PersonifyError,
    Scrubber,
    deepest_message,
    kind_for_status,
)

NS = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"

XML_THREE_DEEP = f"""<?xml version="1.0" encoding="utf-8" standalone="yes"?>
<error xmlns="{NS}">
  <code></code>
  <message xml:lang="en-US">An error occurred while processing this request.</message>
  <innererror>
    <message>Exception has been thrown by the target of an invocation.</message>
    <type>System.Reflection.TargetInvocationException</type>
    <stacktrace>   at …</stacktrace>
    <internalexception>
      <message>Save failed.</message>
      <type>Personify.ApplicationManager.ValidationException</type>
      <internalexception>
        <message>Validation issues: Activity code INFORMZ_NOPE is not valid for subsystem CUS.</message>
        <type>Personify.ValidationIssue</type>
        <stacktrace></stacktrace>
      </internalexception>
    </internalexception>
  </innererror>
</error>""".encode()

JSON_THREE_DEEP = json.dumps(
    {
        "error": {
            "code": "",
            "message": {"lang": "en-US", "value": "An error occurred while processing this request."},
            "innererror": {
                "message": "Exception has been thrown by the target of an invocation.",
                "type": "System.Reflection.TargetInvocationException",
                "stacktrace": "",
                "internalexception": {
                    "message": "Save failed.",
                    "internalexception": {
                        "message": "Validation issues: MasterCustomerId is required.",
                        "type": "Personify.ValidationIssue",
                    },
                },
            },
        }
    }
).encode()


class TestDeepestMessage:
    def test_xml_three_levels_deep(self) -> None:
        assert deepest_message(XML_THREE_DEEP, "application/xml") == (
            "Validation issues: Activity code INFORMZ_NOPE is not valid for subsystem CUS."
        )

    def test_json_three_levels_deep(self) -> None:
        assert deepest_message(JSON_THREE_DEEP, "application/json") == (
            "Validation issues: MasterCustomerId is required."
        )

    def test_top_level_only(self) -> None:
        xml = b"<error><code>x</code><message>Forbidden</message></error>"
        assert deepest_message(xml) == "Forbidden"
        body = json.dumps({"error": {"code": "", "message": {"lang": "en", "value": "Bad filter"}}})
        assert deepest_message(body.encode()) == "Bad filter"

    def test_empty_inner_message_keeps_the_outer_one(self) -> None:
        xml = b"<error><message>Outer</message><innererror><message>  </message></innererror></error>"
        assert deepest_message(xml) == "Outer"

    def test_json_odata_v3_spelling(self) -> None:
        body = json.dumps({"odata.error": {"message": {"value": "v3 style"}}}).encode()
        assert deepest_message(body) == "v3 style"

    def test_deep_nesting_is_bounded(self) -> None:
        depth = 500
        xml = "<error>" + "<innererror><message>m</message>" * depth + "</innererror>" * depth + "</error>"
        assert deepest_message(xml.encode()) == "m"

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"<html><body>Service Unavailable</body></html>",
            b"<error><message>unclosed",
            b"{not json",
            b"[1, 2, 3]",
            b'{"error": "just text"}',
            b'{"error": {"message": 42}}',
            b"\xff\xfe\x00garbage",
            b"[" * 100_000 + b"]" * 100_000,
            b"<a>" * 50_000,
        ],
    )
    def test_garbage_gives_none(self, body: bytes) -> None:
        assert deepest_message(body) is None

    def test_doctype_is_refused(self) -> None:
        laughs = b"""<?xml version="1.0"?>
<!DOCTYPE error [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<error><message>&lol4;</message></error>"""
        assert deepest_message(laughs) is None

    def test_utf16_entity_expansion_is_refused_and_quick(self) -> None:
        # A BOM and two bytes a character: nothing of "<!DOCTYPE" is visible to a search of the raw bytes.
        laughs = (
            '<?xml version="1.0" encoding="utf-16"?>\n<!DOCTYPE error [\n <!ENTITY l0 "lol">\n'
            + "".join(f' <!ENTITY l{n} "{f"&l{n - 1};" * 10}">\n' for n in range(1, 6))
            + "]>\n<error><message>&l5;&l5;&l5;</message></error>"
        ).encode("utf-16")
        assert laughs.startswith(b"\xff\xfe") and len(laughs) < 3000
        started = time.perf_counter()
        assert deepest_message(laughs, "application/xml") is None
        assert time.perf_counter() - started < 0.5

    def test_utf16_error_document_gives_its_deepest_message(self) -> None:
        body = XML_THREE_DEEP.decode().replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
        assert deepest_message(body, "application/xml; charset=utf-16") == (
            "Validation issues: Activity code INFORMZ_NOPE is not valid for subsystem CUS."
        )

    def test_external_entity_is_refused(self) -> None:
        xxe = b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><error><message>&x;</message></error>'
        assert deepest_message(xxe) is None

    def test_huge_body_is_not_parsed(self) -> None:
        body = b"<error><message>" + b"x" * MAX_ERROR_BODY + b"</message></error>"
        assert deepest_message(body) is None

    @given(st.binary(max_size=2000))
    def test_never_raises(self, body: bytes) -> None:
        result = deepest_message(body)
        assert result is None or isinstance(result, str)

    @given(st.text(max_size=300))
    def test_never_raises_on_text_that_looks_like_documents(self, text: str) -> None:
        for body in (f"<error>{text}</error>", f'{{"error": {text}}}', text):
            deepest_message(body.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.VALIDATION),
        (401, ErrorKind.AUTH),
        (403, ErrorKind.AUTH),
        (404, ErrorKind.NOT_FOUND),
        (405, ErrorKind.VALIDATION),
        (408, ErrorKind.TIMEOUT),
        (500, ErrorKind.SERVER),
        (503, ErrorKind.UNAVAILABLE),
        (302, ErrorKind.MALFORMED),
    ],
)
def test_kind_for_status(status: int, kind: ErrorKind) -> None:
    assert kind_for_status(status) is kind


class TestMayHaveArrived:
    @pytest.mark.parametrize(
        "kind", [ErrorKind.TIMEOUT, ErrorKind.DROPPED, ErrorKind.SERVER, ErrorKind.MALFORMED, ErrorKind.TLS]
    )
    def test_uncertain_writes(self, kind: ErrorKind) -> None:
        assert PersonifyError(kind, "x", write=True).may_have_arrived
        assert PersonifyError(kind, "x", write=True, sent=True).may_have_arrived

    @pytest.mark.parametrize(
        "kind", [ErrorKind.AUTH, ErrorKind.VALIDATION, ErrorKind.NOT_FOUND, ErrorKind.NOT_SENT]
    )
    def test_refused_writes(self, kind: ErrorKind) -> None:
        assert not PersonifyError(kind, "x", write=True).may_have_arrived

    def test_only_a_failure_before_any_byte_left_counts_as_not_sent(self) -> None:
        for kind in (ErrorKind.TLS, ErrorKind.DROPPED, ErrorKind.CONNECTION, ErrorKind.TIMEOUT):
            assert not PersonifyError(kind, "x", write=True, sent=False).may_have_arrived
            assert PersonifyError(kind, "x", write=True, sent=True).may_have_arrived
        # A TLS failure after the request went out is a broken answer, not an unreachable service.
        assert not PersonifyError(ErrorKind.TLS, "x", write=True, sent=True).unreachable
        assert PersonifyError(ErrorKind.TLS, "x", write=True, sent=False).unreachable

    @pytest.mark.parametrize(("status", "arrived"), [(503, False), (429, False), (502, True), (504, True)])
    def test_a_gateway_that_passed_the_write_on_may_have_applied_it(self, status: int, arrived: bool) -> None:
        error = PersonifyError(ErrorKind.UNAVAILABLE, "x", status=status, write=True, sent=True)
        assert error.may_have_arrived is arrived

    def test_connect_failures_never_arrived(self) -> None:
        for kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.TLS):
            error = PersonifyError(kind, "x", write=True, during_connect=True)
            assert not error.may_have_arrived
            assert error.unreachable

    def test_reads_never_arrive(self) -> None:
        assert not PersonifyError(ErrorKind.TIMEOUT, "x", write=False).may_have_arrived

    def test_read_timeout_is_not_unreachable(self) -> None:
        assert not PersonifyError(ErrorKind.TIMEOUT, "x").unreachable
        assert not PersonifyError(ErrorKind.SERVER, "x", status=500).unreachable


def test_str_and_repr() -> None:
    error = PersonifyError(ErrorKind.VALIDATION, "Bad code", status=400, excerpt="<error/>")
    assert str(error) == "HTTP 400: Bad code"
    assert "VALIDATION" in repr(error)
    assert "Bad code" in repr(error)
    assert str(PersonifyError(ErrorKind.CONNECTION, "refused")) == "refused"


def test_pickles_with_all_fields() -> None:
    error = PersonifyError(ErrorKind.TIMEOUT, "slow", status=None, excerpt="e", write=True)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.message, copy.excerpt, copy.may_have_arrived) == (
        ErrorKind.TIMEOUT,
        "slow",
        "e",
        True,
    )


class TestScrubber:
    def test_every_spelling_of_the_secret_goes(self) -> None:
        scrub = Scrubber("svc", "p@ss w/rd")
        # base64("svc:p@ss w/rd")
        text = "pw=p@ss w/rd enc=p%40ss%20w%2Frd hdr=Basic c3ZjOnBAc3Mgdy9yZA== b64=cEBzcyB3L3Jk"
        cleaned = scrub(text)
        assert "p@ss w/rd" not in cleaned
        assert "p%40ss%20w%2Frd" not in cleaned
        assert "c3ZjOnBAc3Mgdy9yZA==" not in cleaned
        assert "cEBzcyB3L3Jk" not in cleaned
        assert cleaned.count("***") == 4

    def test_a_short_password_inside_a_word_is_left_alone(self) -> None:
        scrub = Scrubber("u", "p")
        assert scrub("decryption failed") == "decryption failed"
        assert scrub("password=p;") == "password=***;"
        assert scrub("p") == "***"
        assert scrub("(p) 'p' p, p.") == "(***) '***' ***, ***."

    def test_a_long_password_counts_only_where_it_stands_alone(self) -> None:
        # The same rule for every length: inside a longer token it is another value, not the password.
        scrub = Scrubber("u", "S3cr3t!")
        assert scrub("token xS3cr3t!x rejected") == "token xS3cr3t!x rejected"
        assert scrub("token S3cr3t!x rejected") == "token S3cr3t!x rejected"
        assert scrub("user u, password S3cr3t!, rejected") == "user u, password ***, rejected"

    def test_basic_token_and_url_encoded_password_go_whole(self) -> None:
        scrub = Scrubber("u", "p w")
        token = base64.b64encode(b"u:p w").decode()
        assert scrub(f"Authorization: Basic {token}") == "Authorization: Basic ***"
        assert scrub("https://h/x?password=p%20w&next=1") == "https://h/x?password=***&next=1"

    def test_excerpt_never_leaves_half_a_secret(self) -> None:
        scrub = Scrubber("u", "hunter2-secret")
        text = "x" * 494 + " hunter2-secret " + "y" * 100
        excerpt = scrub.excerpt(text)
        assert len(excerpt) == 500
        assert "hunter" not in excerpt

    def test_excerpt_stays_clean_when_an_earlier_replacement_moves_the_cut(self) -> None:
        password = "correct-horse-battery-staple-0123456789"
        token = base64.b64encode(f"u:{password}".encode()).decode()
        # The token shrinks to three stars, which pulls the password across the 500th character.
        text = f"{token} " + "x" * 490 + f" {password} " + "y" * 600
        excerpt = Scrubber("u", password).excerpt(text)
        assert len(excerpt) == 500
        assert excerpt == "*** " + "x" * 490 + " *** y"

    def test_empty_password_changes_nothing(self) -> None:
        assert Scrubber("u", "")("anything") == "anything"

    # Stars and NUL are left out of passwords: the redaction and the sentinel below are made of them.
    @given(
        st.text(alphabet=st.characters(blacklist_characters="*\x00"), min_size=1, max_size=30),
        st.text(max_size=200),
        st.text(max_size=200),
    )
    # A lone surrogate (text decoded with surrogateescape) has no UTF-8 form; scrubbing must not fail.
    @example(password="\ud800", before="", after="")
    def test_the_password_standing_alone_never_survives(self, password: str, before: str, after: str) -> None:
        scrubbed = Scrubber("user", password)(f"{before} {password} {after}")
        assert f" {password} " not in f" {scrubbed} "
