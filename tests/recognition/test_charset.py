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


def test_a_charset_from_texts_leaves_out_control_characters_a_label_holds_by_mistake():
    assert Charset.from_texts(["a\tb", "c\x1bd\r"]).symbols == ["a", "b", "c", "d"]


def test_json_roundtrip_and_duplicates():
    cs = Charset("xyz")
    assert Charset.from_json(cs.to_json()) == cs
    with pytest.raises(ValueError):
        Charset("aa")


def test_charset_file_drops_line_breaks_byte_order_mark_and_duplicates_after_normalisation(tmp_path):
    from hwr.recognition.charset import Charset, read_charset_file

    path = tmp_path / "symbols.txt"
    # Saved on Windows (BOM, CR LF), with "Å" once as the Angstrom sign (NFC: the letter).
    path.write_bytes("\ufeffa\r\nb\r\n\u00c5\r\n\u212b\r\n".encode("utf-8"))
    assert read_charset_file(path).symbols == ["a", "b", "\u00c5"]
    # A listed combining mark stays a symbol of its own, as hwr adapt writes a model's charset.
    path.write_text("z\u0301", encoding="utf-8")
    assert read_charset_file(path) == Charset(["z", "\u0301"])


@pytest.mark.parametrize("content, message", [
    (b"ab\xe9", "not UTF-8"),  # Latin-1
    (b"", "lists no symbols"),
    (b"\r\n\n", "lists no symbols"),
])
def test_bad_charset_file_is_a_config_error_naming_it(tmp_path, content, message):
    from hwr.errors import ConfigError
    from hwr.recognition.charset import read_charset_file

    path = tmp_path / "symbols.txt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"symbols.txt: .*{message}"):
        read_charset_file(path)


def test_charset_folder_or_missing_file_is_named(tmp_path):
    from hwr.errors import ConfigError, MissingFileError
    from hwr.recognition.charset import read_charset_file

    with pytest.raises(ConfigError, match="is a folder"):
        read_charset_file(tmp_path)
    with pytest.raises(MissingFileError, match="nope.txt: charset file not found"):
        read_charset_file(tmp_path / "nope.txt")


def test_characters_the_charset_lacks_are_folded_to_what_it_writes_for_them():
    cs = Charset()
    assert cs.folded("\u2018it\u2019s\u2019 \u201cso\u201d\u2026 \u2014 na\u00efve\u00a0\u00e9t\u00e9") == (
        "'it's' \"so\"... - naive ete")
    assert cs.folded("snow \u2603 and \u00df") == "snow \u2603 and \u00df"  # nothing alike: left as it is
    # A spacing accent is a space and a combining mark: not folded to a space (a review).
    assert cs.folded("Mu\u00a8ller \u02dc \u00b8a") == "Mu\u00a8ller \u02dc \u00b8a"
    assert cs.folded("co\u00adop") == "co-op"
    assert Charset("abc\u00e9").folded("\u00e9a") == "\u00e9a"  # a charset with it keeps it
