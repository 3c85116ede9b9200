"""The validity stage and the safe JSON reader, on the real language model (fastText lid.176)."""

from __future__ import annotations

import json

import pytest

from oracle.scoring import safejson
from oracle.scoring.language import LanguageIdentifier
from oracle.scoring.validity import MAX_RESULT_BYTES, MIN_LETTERS, check

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["positive", "negative"]},
        "confidence": {"type": "number", "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}


def test_bytes_must_be_utf8_and_the_reason_names_the_byte(identifier: LanguageIdentifier) -> None:
    verdict = check(b"caf\xc3\xa9 ok \xff rest", schema=None, language=None, identifier=identifier)
    assert not verdict.valid
    assert verdict.reason == "not UTF-8 (byte 9)"
    assert check("café".encode(), schema=None, language=None, identifier=identifier).text == "café"


def test_a_lone_surrogate_is_not_utf8(identifier: LanguageIdentifier) -> None:
    verdict = check("ok \udc80", schema=None, language=None, identifier=identifier)
    assert (verdict.valid, verdict.reason) == (False, "not UTF-8 (character 3 is a lone surrogate)")


@pytest.mark.parametrize("as_bytes", [False, True])
def test_size_limit_is_exact(identifier: LanguageIdentifier, as_bytes: bool) -> None:
    at_limit = "a" * MAX_RESULT_BYTES
    over = at_limit + "a"
    ok = check(at_limit.encode() if as_bytes else at_limit, schema=None, language=None, identifier=identifier)
    too_big = check(over.encode() if as_bytes else over, schema=None, language=None, identifier=identifier)
    assert ok.valid
    assert not too_big.valid
    assert too_big.reason == f"result is {MAX_RESULT_BYTES + 1} bytes (limit {MAX_RESULT_BYTES})"


def test_multibyte_characters_count_as_bytes(identifier: LanguageIdentifier) -> None:
    text = "é" * (MAX_RESULT_BYTES // 2 + 1)  # 2 bytes each: one byte over
    assert not check(text, schema=None, language=None, identifier=identifier).valid


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_is_invalid(identifier: LanguageIdentifier, text: str) -> None:
    verdict = check(text, schema=None, language=None, identifier=identifier)
    assert (verdict.valid, verdict.reason) == (False, "empty result")


def test_schema_match_and_the_reason_of_a_mismatch(identifier: LanguageIdentifier) -> None:
    good = check(
        '{"label": "negative", "confidence": 1}', schema=SCHEMA, language=None, identifier=identifier
    )
    assert good.valid and good.is_json and good.text == "negative"
    over = check(
        '{"label": "negative", "confidence": 1.01}', schema=SCHEMA, language=None, identifier=identifier
    )
    assert over.reason == "schema: at confidence: 1.01 is greater than the maximum of 1"
    missing = check('{"label": "negative"}', schema=SCHEMA, language=None, identifier=identifier)
    assert missing.reason == "schema: at $: 'confidence' is a required property"
    prose = check("negative", schema=SCHEMA, language=None, identifier=identifier)
    assert prose.reason is not None and prose.reason.startswith("schema: not JSON")


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_limit_is_exact(identifier: LanguageIdentifier) -> None:
    schema = {"type": "array"}
    assert check(_nested(safejson.MAX_DEPTH), schema=schema, language=None, identifier=identifier).valid
    one_more = check(_nested(safejson.MAX_DEPTH + 1), schema=schema, language=None, identifier=identifier)
    assert one_more.reason == "schema: JSON nested 65 levels deep (limit 64)"
    deep = check(_nested(30_000), schema=schema, language=None, identifier=identifier)
    assert deep.reason == "schema: JSON nested 30000 levels deep (limit 64)"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert safejson.depth('["[[[[", {"a": "{{{{"}]') == 2
    assert safejson.loads('["' + "[" * 1000 + '"]') == ["[" * 1000]


def test_huge_numbers_are_refused() -> None:
    assert safejson.loads("9" * safejson.MAX_INT_DIGITS) == int("9" * safejson.MAX_INT_DIGITS)
    with pytest.raises(safejson.UnsafeJsonError, match="integer of 65 digits"):
        safejson.loads("9" * (safejson.MAX_INT_DIGITS + 1))
    with pytest.raises(safejson.UnsafeJsonError, match="overflows a float"):
        safejson.loads('{"x": 1e400}')
    with pytest.raises(safejson.UnsafeJsonError, match="NaN is not JSON"):
        safejson.loads("[NaN]")
    with pytest.raises(safejson.UnsafeJsonError, match="not JSON"):
        safejson.loads("{'single': 'quotes'}")


def test_wrong_language_is_invalid(identifier: LanguageIdentifier) -> None:
    english = "The leaves change colour because trees stop making chlorophyll in autumn."
    verdict = check(english, schema=None, language="fr", identifier=identifier)
    assert (verdict.valid, verdict.reason, verdict.language) == (False, "language en, expected fr", "en")
    french = "Les feuilles changent de couleur parce que les arbres cessent de produire de la chlorophylle."
    assert check(french, schema=None, language="fr", identifier=identifier).language == "fr"


def test_language_of_json_is_the_language_of_its_string_values(identifier: LanguageIdentifier) -> None:
    schema = {"type": "object"}
    doc = json.dumps(
        {"title": "Mount Fuji, the highest mountain in Japan", "keywords": ["volcano", "climbing"]}
    )
    verdict = check(doc, schema=schema, language="ja", identifier=identifier)
    assert verdict.reason == "language en, expected ja"
    ja = json.dumps(
        {"title": "日本一高い山、富士山", "keywords": ["富士山", "活火山", "世界文化遺産"]},
        ensure_ascii=False,
    )
    assert check(ja, schema=schema, language="ja", identifier=identifier).valid


def test_short_texts_are_not_language_checked(identifier: LanguageIdentifier) -> None:
    short = "x" * (MIN_LETTERS - 1)
    assert check(short, schema=None, language="ja", identifier=identifier).valid
    long_enough = "Antoni Gaudí Barcelona Sagrada Familia"
    assert not check(long_enough, schema=None, language="ja", identifier=identifier).valid
