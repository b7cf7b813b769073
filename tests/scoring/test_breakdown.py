import pytest

from hwr.records import LineSample
from hwr.scoring.evaluate import score_line, score_texts
from hwr.scoring.report.bias_variance import SplitScore, diagnose, format_table
from hwr.scoring.report.bootstrap import Interval
from hwr.scoring.report.breakdown import (
    NO_SUBSET,
    by_length,
    by_subset,
    cer_histogram,
    length_bin,
    read_group_table,
    subset_resolver,
)
from hwr.scoring.report.confusions import EMPTY, char_error_rates, confusion_matrix, tally_errors, top_pairs


def _sample(id, **meta):
    return LineSample(id=id, text="x", image="x.png", meta=meta)


def test_subset_from_metadata_id_pattern_and_table(tmp_path):
    assert subset_resolver()(_sample("s1", font="caveat", kind="words")) == "caveat"
    assert subset_resolver()(_sample("a01-000u-00", form="a01-000u")) == "a01-000u"
    assert subset_resolver()(_sample("writer7/l01")) == "writer7"  # pairs: the folder
    assert subset_resolver()(_sample("l01")) == NO_SUBSET
    assert subset_resolver("kind")(_sample("s1", font="caveat", kind="words")) == "words"
    assert subset_resolver(r"id:^(\w+)-")(_sample("a01-000u-00")) == "a01"
    assert subset_resolver("none")(_sample("s1", font="caveat")) == ""
    forms = tmp_path / "forms.txt"
    forms.write_text("# IAM forms.txt\na01-000u 000 2 prt 7 5 52 36\na01-000x 001 2 prt 7 5 52 36\n")
    table = read_group_table(forms)
    by_writer = subset_resolver("auto", table)
    assert by_writer(_sample("a01-000u-03", form="a01-000u")) == "000"
    assert by_writer(_sample("a01-000x-00")) == "001"  # form taken from the id
    assert by_writer(_sample("b02-1-00", form="b02-1")) == "b02-1"  # not in the table: falls back
    (tmp_path / "empty.tsv").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no 'id subset' rows"):
        read_group_table(tmp_path / "empty.tsv")


def test_subset_and_length_breakdowns_sum_to_the_corpus():
    report = score_texts(["a", "b", "c", "d"], ["abcd", "ab", "a" * 25, ""], ["abcd", "xb", "a" * 20, "q"],
                         subsets=["w1", "w2", "w1", "w2"])
    subsets = {g.name: g for g in by_subset(report.results)}
    assert subsets["w1"].char_errors == 5 and subsets["w1"].chars == 29
    assert subsets["w2"].cer == pytest.approx(2 / 2)  # 1 substitution + 1 insertion over 2 chars
    assert sum(g.char_errors for g in subsets.values()) == report.char_errors
    assert by_subset(report.results)[0].name == "w2"  # worst first
    lengths = by_length(report.results)
    assert [g.name for g in lengths] == ["0", "1-10", "21-30"]
    assert sum(g.lines for g in lengths) == 4
    assert length_bin(200) == "81+"
    assert cer_histogram(report.results, bins=4) == [2, 0, 1, 1]  # line CERs 0, 0.5, 0.2, 1.0


def test_confusions_from_alignment():
    results = [score_line("1", "hello world", "hallo world"), score_line("2", "cat", "cot"),
               score_line("3", "dog", "dg"), score_line("4", "ab", "abc"), score_line("5", "same", "same")]
    tally = tally_errors(results)
    assert tally.chars[("e", "a")] == 1 and tally.chars[("a", "o")] == 1
    assert tally.chars[("o", EMPTY)] == 1 and tally.chars[(EMPTY, "c")] == 1
    assert sum(tally.chars.values()) == sum(r.char_errors for r in results)
    top = top_pairs(tally.chars, 10)
    assert {t["type"] for t in top} == {"substitution", "deletion", "insertion"}
    assert tally.words[("hello", "hallo")] == 1 and tally.words[("dog", "dg")] == 1
    rows, cols, matrix = confusion_matrix(tally, size=5)
    assert rows[-1] == EMPTY and cols[-1] == EMPTY
    assert matrix[rows.index("a")][cols.index("o")] == 1
    assert all(matrix[i][i] == 0 for i in range(len(rows)))  # matches are never counted
    rates = char_error_rates(tally, min_count=1)
    assert rates[0]["error_rate"] <= 1.0 and {"char", "occurrences", "errors"} <= set(rates[0])


def _split(name, cer, half=0.002):
    return SplitScore(name, cer, Interval(cer - half, cer + half), 1000)


def test_bias_variance_gaps_and_reading():
    d = diagnose([_split("train", 0.03), _split("dev", 0.09), _split("test", 0.10)], human_cer=0.01)
    assert d.gaps == pytest.approx({"avoidable_bias": 0.02, "variance": 0.06, "data_mismatch": 0.01})
    assert "variance" in d.reading and "overfits" in d.reading
    table = format_table(d)
    assert "train" in table and "+6.00 points" in table and "reading:" in table
    bias = diagnose([_split("train", 0.20), _split("val", 0.21)], target_cer=0.05)
    assert "avoidable bias" in bias.reading and "misses the target" in bias.reading
    noisy = diagnose([_split("train", 0.0500, 0.01), _split("dev", 0.0505, 0.01), _split("test", 0.0510, 0.01)],
                     human_cer=0.05)
    assert set(noisy.noisy) == {"variance", "data_mismatch"} and "noise" in noisy.reading


def test_a_split_without_a_cer_is_listed_but_no_gap_or_reading_is_drawn_from_it():
    unscored = SplitScore("dev", None, None, 0)
    d = diagnose([_split("train", 0.05), unscored, _split("test", 0.30)], target_cer=0.10)
    assert d.gaps.keys() == {"avoidable_bias"}  # no variance (dev - train) nor mismatch (test - dev)
    assert [s.name for s in d.undefined] == ["dev"] and d.to_dict()["cer_undefined"] == ["dev"]
    assert d.to_dict()["splits"][1] == {"name": "dev", "cer": None, "cer_ci95": None, "lines": 0}
    assert d.reading.startswith("dev has no CER (no line scored), so no gap is drawn from it")
    assert "test CER 30.00% misses the target" in d.reading  # the headline falls to a split with a CER
    row = next(line for line in format_table(d).splitlines() if line.strip().startswith("dev"))
    assert "n/a" in row and "no line scored" in row and "0.00%" not in row
    neither = diagnose([SplitScore("train", None, None, 4), unscored])  # train: only empty references
    assert not neither.gaps and neither.reading.startswith("train has no CER (no reference characters)")
    assert "no gap to read" in neither.reading


def test_a_missing_or_non_utf8_groups_table_is_a_user_error_naming_the_flag(tmp_path):
    from hwr.errors import ConfigError, MissingFileError

    with pytest.raises(MissingFileError, match=r"--groups-file .*missing\.tsv: no such file"):
        read_group_table(tmp_path / "missing.tsv")
    with pytest.raises(MissingFileError, match=r"--groups-file .*: is a folder, not a text file"):
        read_group_table(tmp_path)
    (tmp_path / "latin1.tsv").write_bytes("l0\tcafe\nl1\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"--groups-file .*latin1\.tsv: not UTF-8 \(line 2, byte 0xe9\)"):
        read_group_table(tmp_path / "latin1.tsv")


def test_rows_a_groups_table_cannot_use_are_warned_about_not_dropped_in_silence(tmp_path, caplog):
    (tmp_path / "groups.tsv").write_text("l0\twriterA\nl1\nl2\twriterB\nl0\twriterC\nl3\twriterB\nl3\twriterB\n")
    with caplog.at_level("WARNING", logger="hwr.scoring.report.breakdown"):
        table = read_group_table(tmp_path / "groups.tsv")
    assert table == {"l0": "writerC", "l2": "writerB", "l3": "writerB"}
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 row without a subset column (line 2): left out" in m for m in messages), messages
    assert any("1 id given two subsets; the later row counts: 'l0' (lines 1 and 4)" in m for m in messages), messages


def test_a_groups_table_reads_comments_and_row_ends_as_the_data_readers_do(tmp_path):
    # An indented comment is a comment; a lone CR ends a row; U+2028 inside a row is no row end.
    (tmp_path / "groups.tsv").write_bytes("  # writer\tgroup\rl0\twriter A\u2028B\rl1\twriterB\r".encode())
    assert read_group_table(tmp_path / "groups.tsv") == {"l0": "writer A\u2028B", "l1": "writerB"}
