"""Masks that cannot be reversed: keyed with the installation's secret (`NIR_MASK_KEY_FILE`), the
same for every way a number is written, wherever the hub writes text (issue 29, point 3)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import hub.bootstrap
from hub.bootstrap import read_mask_key
from hub.connectors.receipts import decode_receipt
from hub.domain import identifiers
from hub.domain.events import Origin
from hub.domain.identifiers import Masker, MaskKeyMissing, make_national_id, mask, use_masker
from hub.domain.redaction import clean, echo
from hub.domain.transfer import Failure, ReceiptOutcome
from hub.errors import ConfigurationError
from hub.gateway.problems import Problem, field_errors
from hub.ops import logs
from hub.pipeline.deadletter import dead_letter_headers, read_headers
from hub.pipeline.receipts import encode_receipt
from hub.rules import RuleContext, evaluate
from hub.schemas.codec import catalog
from hub.sources import SourceRegistry
from tests.factories import synthetic_person

# Fixed keys, so that every run enumerates against the same masks.
KEY = bytes(range(32))
WRONG_KEY = bytes(range(1, 33))
# The slice of a birth year the brute force searches: a month keeps the test at a second or two,
# and is the same search as a year's, twelve times smaller.
BIRTH_MONTH = (1987, 5)


@pytest.fixture
def keyed() -> Iterator[None]:
    """This test masks with KEY; the session's masker is back afterwards."""
    before = identifiers._masker
    use_masker(Masker(KEY))
    yield
    use_masker(before)


def _unkeyed_mask(value: str) -> str:
    """The mask as it was before issue 29: SHA-256 with no key, cut to 32 bits."""
    return f"<id:{len(value)}:{hashlib.sha256(value.encode()).hexdigest()[:8]}>"


def _synthetic_birth_month(year: int, month: int) -> list[str]:
    """Every synthetic (Tenor, month + 80) fødselsnummer of people born in that month with valid
    check digits: the whole space an attacker who knows when a person was born must search."""
    numbers = []
    day = dt.date(year, month, 1)
    while day.month == month:
        for individual in (*range(500), *range(750, 1000)):  # those that mean the 1900s
            number = make_national_id(day, individual)
            if number is not None:
                numbers.append(number)
        day += dt.timedelta(days=1)
    return numbers


def test_a_brute_force_over_a_birth_month_without_the_key_finds_nobody(keyed: None) -> None:
    month = _synthetic_birth_month(*BIRTH_MONTH)
    people = random.Random(29).sample(month, 200)
    masks = {mask(person) for person in people}

    # What the attack of issue 29 tried: the unkeyed mask, or a plain SHA-256 cut either way.
    unkeyed = {_unkeyed_mask(n) for n in month}
    sha_ends = {hashlib.sha256(n.encode()).hexdigest()[-8:] for n in month}
    assert not masks & unkeyed
    assert not {m[-9:-1] for m in masks} & sha_ends
    wrong = Masker(WRONG_KEY)
    assert not masks & {wrong(n) for n in month}

    # The search was whole: the same enumeration with the key finds every person, and without
    # the key the old mask gave every person away.
    right = Masker(KEY)
    assert {n for n in month if right(n) in masks} == set(people)
    assert len(month) > 15_000


def test_a_mask_is_keyed_stable_and_looks_as_masks_did(keyed: None) -> None:
    national_id = synthetic_person().national_id or ""
    masked = mask(national_id)
    other = national_id[:-1] + ("1" if national_id.endswith("0") else "0")  # one digit changed
    assert masked == mask(national_id) and masked != mask(other)
    assert masked.startswith("<id:11:") and masked.endswith(">") and len(masked) == len("<id:11:>") + 8
    assert masked != Masker(WRONG_KEY)(national_id)
    assert "KEY" not in repr(Masker(KEY)) and str(KEY) not in repr(Masker(KEY))


def test_without_a_key_nothing_is_masked_and_a_log_line_shows_no_hash() -> None:
    before = identifiers._masker
    use_masker(None)
    try:
        with pytest.raises(MaskKeyMissing):
            mask("17058742341")
        record = logging.LogRecord("t", logging.WARNING, __file__, 1, "person %s", ("17058742341",), None)
        logs.RedactingFilter().filter(record)
        assert record.getMessage() == "person <id:11:unkeyed>"
    finally:
        use_masker(before)


def test_a_key_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Masker(b"short")


# A fødselsnummer and a DUF number as people write them out.
def _written(national_id: str, duf: str) -> list[tuple[str, str]]:
    n, d = national_id, duf
    return [
        (f"{n[:6]} {n[6:]}", n),
        (f"{n[:6]}-{n[6:]}", n),
        (f"{n[:6]}\u00a0{n[6:]}", n),
        (f"{n[:2]}.{n[2:4]}.{n[4:6]} {n[6:9]} {n[9:]}", n),
        (f"{n[:6]} - {n[6:]}", n),
        (f"{d[:4]}-{d[4:8]}-{d[8:]}", d),
        (f"{d[:4]} {d[4:8]} {d[8:]}", d),
    ]


PERSON = synthetic_person()
WRITTEN = _written(PERSON.national_id or "", PERSON.duf_number or "")


def _reveals(text: str, written: str, number: str) -> bool:
    """Whether `text` holds the number, as written or by its digits with anything between them."""
    digits_only = "".join(c for c in text if c.isdigit())
    return written in text or number in digits_only or number[-5:] in text


@pytest.mark.parametrize(("written", "number"), WRITTEN, ids=[w for w, _ in WRITTEN])
def test_a_number_written_with_separators_is_masked_as_the_number_itself(
    keyed: None, written: str, number: str
) -> None:
    cleaned = clean(f"see {written}, dated 2026-11-21.")
    assert cleaned == f"see {mask(number)}, dated 2026-11-21."
    assert echo(written) == f"'{mask(number)}'"


def test_dates_and_municipality_numbers_beside_them_are_not_taken_for_identifiers(keyed: None) -> None:
    for text in (
        "kommune 4601 2026-11-21 ifølge",
        "kommune 4601 21.11.2026",
        "0301, 4601 og 5001",
        "v5 i 2026",
    ):
        assert clean(text) == text


@pytest.fixture
def logged(keyed: None) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("hub.test_masks")
    logger.addHandler(handler)
    logger.propagate = False
    logs.install(logging.INFO, repeat_seconds=0.0, handlers=[handler])
    yield stream
    logger.removeHandler(handler)


@pytest.mark.parametrize(("written", "number"), WRITTEN, ids=[w for w, _ in WRITTEN])
def test_the_log_formatter_masks_a_number_with_separators(
    logged: io.StringIO, written: str, number: str
) -> None:
    logging.getLogger("hub.test_masks").warning("person %s refused", written)
    line = logged.getvalue()
    assert not _reveals(line, written, number) and mask(number) in line


REGISTRY = SourceRegistry.from_mapping({"sources": {"oslo-fagsystem": {"municipalities": ["0301"]}}})


@pytest.mark.parametrize(("written", "number"), WRITTEN, ids=[w for w, _ in WRITTEN])
def test_a_receipts_messages_mask_a_number_with_separators(keyed: None, written: str, number: str) -> None:
    from tests.unit.test_rules import registration

    now = dt.datetime.now(dt.UTC)
    event = dataclasses.replace(registration(), source_system=written)
    context = RuleContext(
        today=now.date(),
        now=now,
        topic_source="oslo-fagsystem",
        registry=REGISTRY,
        allow_synthetic_identifiers=True,
    )
    violations = evaluate(event, context)
    receipt = decode_receipt(
        catalog(),
        encode_receipt(
            catalog(),
            event_id=event.event_id,
            outcome=ReceiptOutcome.REJECTED,
            violations=violations,
            origin=Origin("t", 0, 0),
            now=now,
        ),
    )
    messages = " ".join(v["message"] + " " + v["messageNb"] for v in receipt.violations)
    assert "NIR-SOURCE" in " ".join(v["code"] for v in receipt.violations)
    assert not _reveals(messages, written, number) and mask(number) in messages


@pytest.mark.parametrize(("written", "number"), WRITTEN, ids=[w for w, _ in WRITTEN])
def test_dead_letter_headers_mask_a_number_with_separators(keyed: None, written: str, number: str) -> None:
    failure = Failure("rule", "NIR-X", f"person {written} unknown", f"person {written} ukjent")
    headers = read_headers(dead_letter_headers(Origin("t", 0, 0), failure, dt.datetime.now(dt.UTC)))
    text = " ".join(headers.values())
    assert not _reveals(text, written, number) and mask(number) in text


@pytest.mark.parametrize(("written", "number"), WRITTEN, ids=[w for w, _ in WRITTEN])
def test_problem_documents_mask_a_number_with_separators(keyed: None, written: str, number: str) -> None:
    document = Problem(422, "invalid-event", "Invalid event", detail=f"no person {written}").document()
    errors = field_errors([f"person.{written}: is not {written}"])
    text = str(document) + str(errors)
    assert not _reveals(text, written, number) and mask(number) in text


def test_the_default_key_is_made_once_32_random_bytes_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "state" / "secrets" / "nir-mask.key"
    monkeypatch.setattr(hub.bootstrap, "LOCAL_MASK_KEY_FILE", default)
    key = read_mask_key(default)
    assert len(key) == 32 and default.stat().st_mode & 0o777 == 0o600
    assert default.parent.stat().st_mode & 0o777 == 0o700
    assert read_mask_key(default) == key  # the second start reads the first one's key
    assert list(default.parent.iterdir()) == [default]  # no draft left behind


def test_a_named_key_file_that_is_missing_short_or_unreadable_stops_the_process_with_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError, match=r"NIR_MASK_KEY_FILE .* does not exist"):
        read_mask_key(tmp_path / "nir-mask.key")
    assert not (tmp_path / "nir-mask.key").exists()  # a named key is never made up
    (tmp_path / "short.key").write_bytes(b"x" * 31)
    with pytest.raises(ConfigurationError, match="holds 31 bytes"):
        read_mask_key(tmp_path / "short.key")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        read_mask_key(tmp_path)  # a directory: as unreadable as a file of another user
