"""Checks of LM and lexicon files (hwr.recognition.lm_files).

Not tested here: the beam search refusing them (tests/recognition/test_beam.py)."""
from __future__ import annotations

import re

import pytest

from hwr.errors import ConfigError, MissingFileError
from hwr.recognition.lm_files import check_arpa_counts, check_arpa_start, check_readable_file, kenlm_reason

from bad_inputs import arpa_with_count


def test_a_folder_an_empty_file_and_a_missing_one_are_named_with_what_is_wrong(tmp_path):
    (tmp_path / "empty.arpa").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a folder, not a language model file"):
        check_readable_file(str(tmp_path), "lm")
    with pytest.raises(ConfigError, match="empty.arpa: the lexicon file is empty"):
        check_readable_file(str(tmp_path / "empty.arpa"), "lexicon")
    with pytest.raises(MissingFileError, match="nosuch.arpa: language model file not found"):
        check_readable_file(str(tmp_path / "nosuch.arpa"), "lm")
    (tmp_path / "ok.arpa").write_text("\\data\\\n")
    check_readable_file(str(tmp_path / "ok.arpa"), "lm")


def test_kenlms_message_loses_its_cpp_location_and_build_advice():
    raw = RuntimeError(
        "/tmp/pip-req-build-x/lm/model.cc:49 in void lm::ngram::detail::CheckCounts(const std::vector<long "
        "unsigned int>&) threw FormatLoadException because `counts.size() > 6'.\n"
        "This model has order 7 but KenLM was compiled to support up to 6.  If your build system supports "
        "changing KENLM_MAX_ORDER, change it there and recompile.\n With cmake:\n cmake -DKENLM_MAX_ORDER=10 ..\n"
        "Byte: 103")
    reason = kenlm_reason(raw)
    assert reason.startswith("This model has order 7 but KenLM was compiled to support up to 6")
    assert "cmake" not in reason and "model.cc" not in reason and "hwr lm build --order 6" in reason


@pytest.mark.parametrize("order, count, message", [
    (2, "-5", "'ngram 2=-5' is a negative count"),  # KenLM: a segmentation fault
    (1, "-1", "'ngram 1=-1' is a negative count"),
    (2, "18446744073709551615", "'ngram 2=18446744073709551615' is more n-grams than a file of its size can hold"),
])
def test_arpa_header_counts_that_no_file_could_hold_are_named(tmp_path, order, count, message):
    path = arpa_with_count(tmp_path / "lm.arpa", order, count)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: the header's {message}")):
        check_arpa_counts(str(path))


def test_arpa_header_counts_that_each_fit_but_not_together_are_named(tmp_path):
    path = arpa_with_count(tmp_path / "lm.arpa", 2, "0")
    declared = path.stat().st_size // 4  # the shortest n-gram line: "0 a\n"; a few more digits follow
    path.write_text(path.read_text().replace("ngram 1=4", f"ngram 1={declared}").replace("ngram 2=0",
                                                                                          f"ngram 2={declared}"))
    assert declared <= path.stat().st_size // 4 < 2 * declared  # each fits alone, not together
    with pytest.raises(ConfigError, match=re.escape(f"{path}: the header declares {2 * declared} n-grams in all")):
        check_arpa_counts(str(path))


def test_arpa_header_counts_of_a_whole_file_pass(tmp_path):
    check_arpa_counts(str(arpa_with_count(tmp_path / "lm.arpa", 2, "+2")))  # KenLM reads "+2" as 2
    (tmp_path / "binary.lm").write_bytes(b"mmap lm http://kheafield.com/code\x00")
    check_arpa_counts(str(tmp_path / "binary.lm"))  # not ARPA: KenLM checks it


@pytest.mark.parametrize("gzipped", [False, True])
def test_an_lm_that_opens_with_a_byte_order_mark_is_named(tmp_path, gzipped):
    import gzip

    path = arpa_with_count(tmp_path / "lm.arpa", 2, "2")
    check_arpa_start(str(path))
    data = b"\xef\xbb\xbf" + path.read_bytes()  # as a Windows editor saves UTF-8
    if gzipped:
        path = tmp_path / "lm.arpa.gz"
        data = gzip.compress(data)
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: the language model starts with a byte order mark")):
        check_arpa_start(str(path))


def test_kenlms_zlib_error_on_a_cut_gzip_says_the_file_is_truncated():
    raw = RuntimeError("/tmp/pip-req-build-x/util/read_compressed.cc:192 in bool util::{anonymous}::GZip::Process() "
                       "threw GZException.\nzlib encountered an error  code -5 in the 2-gram at byte 49811 Byte: 49811")
    assert kenlm_reason(raw) == "the gzipped file is cut short (truncated)"


def test_kenlms_message_loses_its_location_when_the_exception_is_namespaced():
    raw = RuntimeError("/tmp/pip-req-build-x/util/probing_hash_table.hh:237 in void util::ProbingHashTable<...>::"
                       "Insert(const T&) threw util::ProbingSizeException.\nHash table with 4 buckets is full.")
    assert kenlm_reason(raw) == "Hash table with 4 buckets is full."
