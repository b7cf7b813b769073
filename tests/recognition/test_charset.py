import pytest

from hwr.recognition.charset import BLANK_ID, Charset, UnknownCharacterError, normalize_text


def test_default_charset_is_printable_ascii_with_blank_zero():
    cs = Charset()
    assert len(cs) == 96  # 95 printable ASCII + blank
    assert BLANK_ID == 0
    assert cs.encode("A") != [0]
    assert cs.decode(cs.encode("Hello, World! 42")) == "Hello, World! 42"


def test_decode_skips_blank():
    cs = Charset("ab")
    assert cs.decode([0, 1, 0, 2, 0]) == "ab"


def test_unknown_characters_raise_not_dropped():
    with pytest.raises(UnknownCharacterError, match="é"):
        Charset().encode("café")


def test_coverage_report_counts_and_examples():
    report = Charset().coverage([("l1", "café"), ("l2", "ok"), ("l3", "é€")])
    assert not report.ok
    assert report.missing["é"] == 2 and report.missing["€"] == 1
    assert report.examples["é"] == ["l1", "l3"]
    assert report.lines_affected == 2
    assert "é" in report.summary()


def test_nfc_normalisation_joins_combining_marks():
    decomposed = "cafe\u0301"
    assert normalize_text(decomposed) == "caf\u00e9"
    cs = Charset.from_texts(["caf\u00e9"])
    assert cs.encode(decomposed) == cs.encode("caf\u00e9")


def test_json_roundtrip_and_duplicates():
    cs = Charset("xyz")
    assert Charset.from_json(cs.to_json()) == cs
    with pytest.raises(ValueError):
        Charset("aa")
