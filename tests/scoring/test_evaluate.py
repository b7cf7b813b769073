"""Scoring without a model, `evaluate()` with a tiny untrained one, and `hwr eval` in-process."""
import csv
import json
import re
import shutil

import pytest
from PIL import Image

from hwr import cli
from hwr.cli import main
from hwr.errors import ConfigError
from hwr.recognition.imaging import ImageError
from hwr.recognition.model import Recognizer
from hwr.records import FailedInput, LineSample
from hwr.scoring.evaluate import (
    EvalConfig,
    LineResult,
    evaluate,
    score_texts,
    write_lines_csv,
    write_report_json,
    write_worst_csv,
)
from hwr.scoring.metrics import TextNormalization

import bad_inputs
from helpers import render_line


@pytest.fixture(scope="module")
def tiny_model(untrained_model):
    return untrained_model


def test_score_texts_hand_computed():
    report = score_texts(["a", "b", "c"], ["the cat", "sat", ""], ["the cot", "", ""])
    assert (report.char_errors, report.chars) == (1 + 3, 7 + 3)
    assert report.cer == pytest.approx(4 / 10) and report.wer == pytest.approx(2 / 3)
    assert [r.cer for r in report.results] == [pytest.approx(1 / 7), 1.0, 0.0]
    assert report.worst(1)[0].id == "b" and report.normalization == []
    with pytest.raises(ValueError, match="same length"):
        score_texts(["a"], ["x", "y"], ["x"])


def test_normalisation_changes_the_score_and_is_recorded():
    refs, hyps = ["Hello , World"], ["hello, world"]
    assert score_texts(["a"], refs, hyps).char_errors == 3
    norm = TextNormalization(iam_detokenize=True, casefold=True)
    report = score_texts(["a"], refs, hyps, normalization=norm)
    assert report.char_errors == 0 and report.normalization == ["iam_detokenize", "casefold"]
    assert report.results[0].reference == "hello, world"  # the text as scored


def test_evaluate_recognises_scores_and_skips_bad_images(tiny_model, tmp_path):
    recognizer = Recognizer.load(tiny_model, device="cpu")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    samples = [LineSample(f"l{i}", text, render_line(text), {"font": f"f{i % 2}"})
               for i, text in enumerate(["the cat", "a dog", "hello"])]
    with pytest.raises(ImageError):
        evaluate(recognizer, samples + [LineSample("bad", "x", broken)], batch_size=2)
    report = evaluate(recognizer, samples + [LineSample("bad", "x", broken)], batch_size=2, skip_bad=True,
                      subset_of=lambda s: s.meta.get("font", ""))
    assert report.lines == 3 and len(report.failures) == 1
    failure = report.failures[0]  # the one failure record of the CLI, the UI and the scorer
    assert isinstance(failure, FailedInput) and failure.source.endswith("broken.png") and failure.page_id == "bad"
    assert [r.subset for r in report.results] == ["f0", "f1", "f0"]
    assert report.chars == len("the cat") + len("a dog") + len("hello")
    assert all(0.0 <= r.confidence <= 1.0 for r in report.results)


def test_the_loader_thread_reads_ahead_without_changing_the_results(tiny_model, tmp_path):
    """Issue 22: the next batches are read and normalised while the network reads this one."""
    import threading

    recognizer = Recognizer.load(tiny_model, device="cpu")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    texts = ["the cat", "a dog", "hello", "sat on", "the mat", "today"]
    samples = [LineSample(f"l{i}", t, render_line(t)) for i, t in enumerate(texts)]
    samples.insert(3, LineSample("bad", "x", broken))
    readers = set()
    real_prepare = recognizer.prepare

    def prepare(images, on_error="raise"):
        readers.add(threading.current_thread().name)
        return real_prepare(images, on_error)

    recognizer.prepare = prepare
    ahead = evaluate(recognizer, samples, batch_size=2, skip_bad=True)
    assert readers and threading.main_thread().name not in readers
    readers.clear()
    inline = evaluate(recognizer, samples, batch_size=2, skip_bad=True, workers=0)
    assert readers == {threading.main_thread().name}
    assert [(r.id, r.hypothesis) for r in ahead.results] == [(r.id, r.hypothesis) for r in inline.results]
    assert [f.page_id for f in ahead.failures] == ["bad"] and ahead.lines == len(texts)


def test_csv_and_json_writers(tmp_path):
    report = score_texts([f"l{i}" for i in range(5)], ["abc"] * 5, ["abc", "ab", "a", "", "abd"])
    write_lines_csv(report, tmp_path / "lines.csv")
    assert len((tmp_path / "lines.csv").read_text().splitlines()) == 6
    write_worst_csv(report, tmp_path / "worst.csv", n=2, label_columns=["slant", " touching "])
    rows = list(csv.DictReader((tmp_path / "worst.csv").open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["l3", "l2"]  # most errors first
    assert rows[0]["slant"] == "" and rows[0]["touching"] == "" and rows[0]["notes"] == ""
    write_report_json(report, tmp_path / "r.json", "m", "d", extra={"cer_ci95": [0.1, 0.2]})
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema"] == "hwr-eval/2" and doc["lines"] == 5 and doc["cer_ci95"] == [0.1, 0.2]
    assert doc["lines_detail"][1]["char_errors"] == 1


def _pairs(folder, texts, prefix="l"):
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        Image.fromarray(render_line(text, size=20)).save(folder / f"{prefix}{i}.png")
        (folder / f"{prefix}{i}.gt.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def test_hwr_eval_says_which_reference_characters_the_model_cannot_write(tiny_model, tmp_path, capsys):
    """A Greek set read by the ASCII model scored 92% CER and said nothing of why (a probe
    helper): each such character is an error whatever the model reads."""
    lines = _pairs(tmp_path / "lines", ["the cat", "a dog"])
    (lines / "l0.gt.txt").write_text("λόγος cat\n", encoding="utf-8")
    report = tmp_path / "r.json"
    assert main(["eval", str(lines), "--model", str(tiny_model), "--device", "cpu", "--decoder", "greedy",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "warning: 5 of the 14 reference characters (35.7%) are ones this model cannot write (" in out, out
    assert json.loads(report.read_text())["unwritable_chars"] == {ch: 1 for ch in "λόγος"}
    from hwr.recognition.charset import Charset
    from hwr.scoring.report.run import unwritable_characters

    upper = Charset(list("HELO "))  # read with --casefold, its "HELLO" scores as "hello": every one writable
    scored = [LineResult("a", "hello", "hello", 0.0, 0.0, 0, 1.0)]
    assert unwritable_characters(upper, scored, TextNormalization(casefold=True)) == {}
    assert unwritable_characters(upper, scored, TextNormalization()) == {"h": 1, "e": 1, "l": 2, "o": 1}
    _pairs(tmp_path / "ascii", ["the cat"])
    assert main(["eval", str(tmp_path / "ascii"), "--model", str(tiny_model), "--device", "cpu",
                 "--decoder", "greedy"]) == 0
    assert "cannot write" not in capsys.readouterr().out


def test_hwr_eval_says_which_reference_characters_the_compared_model_cannot_write(tiny_model, tmp_path, capsys):
    """--compare with a model of a smaller charset said nothing of the characters it loses."""
    from helpers import make_untrained_model

    lines = _pairs(tmp_path / "lines", ["the cat", "a dog"])
    smaller = make_untrained_model(tmp_path / "lower", symbols="abcdefghijklmnopqrstuvwxyz ")
    report = tmp_path / "r.json"
    assert main(["eval", str(lines), "--model", str(tiny_model), "--device", "cpu", "--decoder", "greedy",
                 "--compare", str(smaller), "--bootstrap", "50", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "this model cannot write" not in out
    assert f"are ones B ({smaller}) cannot write" not in out  # every reference character is lower case
    (lines / "l0.gt.txt").write_text("The Cat\n", encoding="utf-8")
    assert main(["eval", str(lines), "--model", str(tiny_model), "--device", "cpu", "--decoder", "greedy",
                 "--compare", str(smaller), "--bootstrap", "50", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"warning: 2 of the 12 reference characters (16.7%) are ones B ({smaller}) cannot write (" in out, out
    assert "this model cannot write" not in out
    assert json.loads(report.read_text())["comparison"]["unwritable_chars_b"] == {"T": 1, "C": 1}


def test_two_readings_take_the_search_settings_each_uses_and_one_neither_uses_is_refused(tiny_model, tmp_path,
                                                                                         capsys):
    """`--decoder greedy --compare-decoder beam-char --lm none --beam-size 4` had been refused
    ("apply to beam decoders only"): the settings are the search's."""
    lines = _pairs(tmp_path / "lines", ["the cat", "a dog"])
    common = ["eval", str(lines), "--model", str(tiny_model), "--device", "cpu", "--bootstrap", "20"]
    assert main([*common, "--decoder", "greedy", "--compare-decoder", "beam-char", "--lm", "none",
                 "--beam-size", "4"]) == 0
    assert "beam search (char mode, no LM, beam 4)" in capsys.readouterr().out
    assert main([*common, "--decoder", "beam-char", "--compare-decoder", "greedy", "--lm", "none",
                 "--word-score", "2"]) == 2
    assert "--word-score: used by neither --decoder beam-char nor --compare-decoder greedy" in capsys.readouterr().err


def test_hwr_eval_compares_two_readings_of_one_model_and_names_each_decoder(tiny_model, tmp_path, capsys):
    lines = _pairs(tmp_path / "lines", ["the cat sat", "a dog"])
    code = main(["eval", str(lines), "--model", str(tiny_model), "--device", "cpu", "--compare-decoder", "greedy",
                 "--bootstrap", "50", "--json", str(tmp_path / "r.json")])
    assert code == 0
    comparison = json.loads((tmp_path / "r.json").read_text())["comparison"]
    # A: the default reading (the beam search with the shipped LM for this ASCII model), B: greedy.
    widths = "; lines read with confidence below 0.95 read again at 1.3 times their width"
    search = "beam search (char mode, char-6gram.arpa.gz, LM weight 1.5, beam 16)"
    assert comparison["model_a"].endswith(f"({search}{widths})")
    assert comparison["model_b"].endswith(f"(greedy{widths})") and str(tiny_model) in comparison["model_b"]
    assert "model comparison (paired bootstrap)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="unknown decoder 'nosuch'"):
        EvalConfig(compare_decoder="nosuch")  # refused before any line is read


def test_hwr_eval_cli_outputs_splits_and_comparison(tiny_model, tmp_path, capsys):
    train = _pairs(tmp_path / "train", ["the cat sat", "a dog", "red sun"])
    dev = _pairs(tmp_path / "dev", ["hello world", "big hill", "one two"])
    out = tmp_path / "out"
    out.mkdir()
    code = main(["eval", "--splits", f"train={train},dev={dev}", "--model", str(tiny_model), "--device", "cpu",
                 "--compare", str(tiny_model), "--casefold", "--bootstrap", "200", "--worst", "2",
                 "--json", str(out / "r.json"), "--html", str(out / "r.html"), "--csv", str(out / "l.csv"),
                 "--worst-csv", str(out / "w.csv"), "--worst-n", "2"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "normalisation: casefold" in stdout and "bias / variance" in stdout and "variance (dev - train)" in stdout
    assert "worst 2 lines" in stdout and "CER" in stdout and "no significant CER difference" in stdout
    doc = json.loads((out / "r.json").read_text())
    assert doc["split"] == "dev" and doc["normalization"] == ["casefold"] and doc["lines"] == 3
    assert [s["name"] for s in doc["bias_variance"]["splits"]] == ["train", "dev"]
    assert doc["comparison"]["delta"] == 0 and doc["cer_ci95"][0] <= doc["cer"] <= doc["cer_ci95"][1]
    assert len((out / "w.csv").read_text().splitlines()) == 3
    assert (out / "r.html").read_text().count("<img") == 2


def test_a_split_whose_every_line_is_bad_is_reported_without_a_cer_or_gaps(tiny_model, tmp_path, capsys):
    train = _pairs(tmp_path / "train", ["the cat sat", "a dog"])
    dev = tmp_path / "dev"
    dev.mkdir()
    for k in range(2):
        (dev / f"b{k}.png").write_bytes(b"")  # zero bytes: unreadable
        (dev / f"b{k}.gt.txt").write_text("x\n")
    code = main(["eval", "--splits", f"train={train},dev={dev}", "--skip-bad", "--model", str(tiny_model),
                 "--device", "cpu", "--bootstrap", "10", "--json", str(tmp_path / "r.json"),
                 "--html", str(tmp_path / "r.html")])
    out, err = capsys.readouterr()
    assert code == 1  # train was scored: done, with inputs skipped
    dev_row = next(line for line in out.splitlines() if line.strip().startswith("dev "))
    assert "n/a" in dev_row and "no line scored" in dev_row and "variance (dev - train)" not in out
    assert "hwr eval: dev: no line scored; skipped 2 lines" in err
    bias_variance = json.loads((tmp_path / "r.json").read_text())["bias_variance"]
    assert bias_variance["splits"][0]["cer"] is not None and bias_variance["splits"][1]["cer"] is None
    assert bias_variance["gaps"].keys() == {"avoidable_bias"} and bias_variance["cer_undefined"] == ["dev"]
    assert "no line scored" in (tmp_path / "r.html").read_text()


def test_hwr_eval_fails_on_unreadable_input(tiny_model, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "absent"), "--model", str(tiny_model), "--device", "cpu"]) == 2
    assert "absent" in capsys.readouterr().err
    data = _pairs(tmp_path / "data", ["the cat"])
    (data / "broken.png").write_bytes(b"not an image")
    (data / "broken.gt.txt").write_text("x\n")
    assert main(["eval", str(data), "--model", str(tiny_model), "--device", "cpu"]) == 2
    assert main(["eval", "--splits", "train", "--model", str(tiny_model)]) == 2
    assert "name=DATASET" in capsys.readouterr().err


def test_an_unreadable_image_a_manifest_lists_is_named_with_its_row(tiny_model, tmp_path, capsys):
    """The image's file alone left the user to search the list for the row to fix or remove."""
    data = _pairs(tmp_path / "data", ["the cat"])
    (data / "notes.txt").write_text("not a picture\n")
    (data / "m.tsv").write_text("l0.png\tthe cat\nnotes.txt\tthe dog\n")
    assert main(["eval", str(data / "m.tsv"), "--model", str(tiny_model), "--device", "cpu"]) == 2
    assert re.search(r"notes\.txt: not a readable image .* \(listed at .*m\.tsv:2\)", capsys.readouterr().err)
    json_out = tmp_path / "r.json"
    assert main(["eval", str(data / "m.tsv"), "--model", str(tiny_model), "--device", "cpu", "--skip-bad",
                 "--json", str(json_out)]) == 1  # some lines left out
    assert "(listed at " in capsys.readouterr().err
    failed = json.loads(json_out.read_text())["failed_files"]
    assert len(failed) == 1 and failed[0].endswith("m.tsv:2)")


def _iam_tree(root, forms):
    """A tiny IAM layout: ascii/lines.txt, ascii/forms.txt (form -> writer) and line images."""
    rows = []
    for form, writer, texts in forms:
        folder = root / "lines" / form.split("-")[0] / form
        folder.mkdir(parents=True)
        for k, text in enumerate(texts):
            Image.fromarray(render_line(text, size=20)).save(folder / f"{form}-{k:02d}.png")
            rows.append(f"{form}-{k:02d} ok 154 1 0 0 10 10 {text.replace(' ', '|')}")
    (root / "ascii").mkdir()
    (root / "ascii" / "lines.txt").write_text("\n".join(rows) + "\n")
    (root / "ascii" / "forms.txt").write_text("".join(f"{f} {w} 2 prt 7 5 52 36\n" for f, w, _ in forms))
    return root


def test_iam_split_files_and_writer_breakdown(tiny_model, tmp_path):
    from hwr.scoring.evaluate import EvalConfig
    from hwr.scoring.report.run import run_eval

    root = _iam_tree(tmp_path / "IAM", [("a01-000u", "000", ["the cat", "sat , down"]),
                                        ("a01-001", "001", ["a dog"]), ("b02-002", "002", ["did n't go"])])
    (tmp_path / "train.txt").write_text("a01-000u\na01-001\n")
    (tmp_path / "test.txt").write_text("b02-002\n")
    cfg = EvalConfig(model=str(tiny_model), device="cpu", splits=f"train={tmp_path / 'train.txt'},"
                     f"test={tmp_path / 'test.txt'}", bootstrap=50, iam_detokenize=True)
    run = run_eval(cfg, str(root))
    assert run.analysed.dataset.name == "test" and run.analysed.report.lines == 1  # no dev: the last split
    assert run.analysed.report.results[0].reference == "didn't go"
    train = run.splits[0]
    assert train.analysis.subset_key == "table forms.txt (writer)"
    assert {g.name: g.lines for g in train.analysis.subsets} == {"000": 2, "001": 1}
    assert run.diagnosis.gaps.keys() == {"avoidable_bias"}  # no dev split: no variance or mismatch


def test_arrays_that_are_not_images_are_named_by_line_id(tiny_model):
    import numpy as np

    recognizer = Recognizer.load(tiny_model, device="cpu")
    samples = [LineSample("ok", "the cat", render_line("the cat")),
               LineSample("nan-line", "x", np.full((20, 60), np.nan, np.float32))]
    with pytest.raises(ImageError, match="nan-line: array holds NaN"):
        evaluate(recognizer, samples)
    report = evaluate(recognizer, samples, skip_bad=True)
    assert report.lines == 1 and [f.source for f in report.failures] == ["nan-line"]


def test_all_empty_references_say_cer_is_undefined(tiny_model, tmp_path, capsys):
    data = tmp_path / "empty"
    data.mkdir()
    for k in range(2):
        Image.fromarray(render_line(f"ink {k}")).save(data / f"l{k}.png")
        (data / f"l{k}.gt.txt").write_text("\n")
    code = main(["eval", str(data), "--model", str(tiny_model), "--device", "cpu", "--bootstrap", "10"])
    out = capsys.readouterr().out
    headline = next(line for line in out.splitlines() if "lines 2" in line)
    assert code == 0 and "CER undefined" in headline and "WER undefined" in headline and "1.0000" not in headline
    assert "CER is undefined: the references hold no characters" in out and "characters inserted" in out


def test_skipped_lines_exit_1_and_are_named(tiny_model, tmp_path, capsys):
    data = _pairs(tmp_path / "data", ["the cat", "a dog"])
    (data / "broken.png").write_bytes(b"not an image")
    (data / "broken.gt.txt").write_text("x\n")
    shutil.copy(data / "l0.png", data / "latin.png")
    bad_inputs.latin1_text(data / "latin.gt.txt")
    code = main(["eval", str(data), "--model", str(tiny_model), "--device", "cpu", "--skip-bad", "--bootstrap", "10"])
    err = capsys.readouterr().err
    assert code == 1 and "broken.png" in err
    # Each kind of skipped line is counted as what it is, not all as "unreadable".
    assert "2 lines (unreadable image: 1, bad ground truth: 1)" in err


def test_every_skipped_line_is_named_on_its_own_row(tiny_model, tmp_path, capsys, monkeypatch):
    """Only three had been named, "and 1 more" in --json alone: the user could not tell which file
    was left out. Past SKIPPED_NAMED the rest are counted and --json named."""
    data = _pairs(tmp_path / "data", ["the cat", "a dog"])
    for k in range(5):
        (data / f"broken{k}.png").write_bytes(b"not an image")
        (data / f"broken{k}.gt.txt").write_text("x\n")
    assert main(["eval", str(data), "--model", str(tiny_model), "--device", "cpu", "--skip-bad", "--bootstrap",
                 "10"]) == 1
    rows = capsys.readouterr().err.splitlines()
    head = next(k for k, row in enumerate(rows) if row.startswith("hwr eval: skipped 5 lines"))
    assert [row.split(":")[0].strip().rsplit("/", 1)[-1] for row in rows[head + 1:head + 6]] == \
        [f"broken{k}.png" for k in range(5)]
    monkeypatch.setattr(cli, "SKIPPED_NAMED", 2)
    main(["eval", str(data), "--model", str(tiny_model), "--device", "cpu", "--skip-bad", "--bootstrap", "10"])
    rows = capsys.readouterr().err.splitlines()
    head = next(k for k, row in enumerate(rows) if row.startswith("hwr eval: skipped 5 lines"))
    assert rows[head + 3] == "  and 3 more (all in --json FILE's failed_files)"


def test_a_manifest_row_whose_image_is_missing_counts_as_an_unreadable_image(tiny_model, tmp_path, capsys):
    _pairs(tmp_path / "data", ["the cat", "a dog"])
    manifest = tmp_path / "lines.tsv"
    manifest.write_text("data/l0.png\tthe cat\ndata/l1.png\ta dog\ndata/gone.png\tlost\nno-tab-row\n", encoding="utf-8")
    code = main(["eval", str(manifest), "--model", str(tiny_model), "--device", "cpu", "--skip-bad",
                 "--bootstrap", "10"])
    err = capsys.readouterr().err
    assert code == 1 and "gone.png" in err
    assert "2 lines (unreadable image: 1, bad ground truth: 1)" in err  # the missing image had counted as truth


def test_eval_json_keeps_the_corpus_word_error_count_beside_the_top_word_edits(tmp_path):
    from hwr.scoring.report.analysis import analyze

    report = score_texts(["a", "b"], ["the cat sat", "a dog"], ["the cot sat", "a dig"])
    write_report_json(report, tmp_path / "r.json", "m", "d", extra=analyze(report, resamples=10).to_dict())
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["word_errors"] == 2 and doc["words"] == 5
    assert {p["reference"] for p in doc["top_word_errors"]} == {"cat", "dog"}
    with pytest.raises(ValueError, match="would overwrite summary keys"):
        write_report_json(report, tmp_path / "r.json", "m", "d", extra={"word_errors": []})


@pytest.mark.parametrize("setting, flag", [({"batch_size": 0}, "--batch-size"), ({"bootstrap": 0}, "--bootstrap"),
                                           ({"bootstrap": -5}, "--bootstrap"), ({"worst": -1}, "--worst"),
                                           ({"worst_n": -1}, "--worst-n"), ({"group_by": "id:("}, "--group-by")])
def test_eval_settings_that_cannot_work_are_refused_naming_the_flag(setting, flag):
    from hwr.errors import ConfigError
    from hwr.scoring.evaluate import EvalConfig

    with pytest.raises(ConfigError, match=flag):
        EvalConfig(**setting)


def test_a_report_over_a_file_of_the_data_set_is_refused_before_scoring(tiny_model, pairs_dir, tmp_path):
    from hwr.errors import ConfigError
    from hwr.scoring.evaluate import EvalConfig
    from hwr.scoring.report.run import run_eval

    truth = sorted(pairs_dir.glob("*.gt.txt"))[1]
    image = sorted(pairs_dir.glob("*.png"))[0]
    before = truth.read_bytes()
    for option, path in (("json", truth), ("html", image), ("csv", pairs_dir / ".." / pairs_dir.name / truth.name)):
        cfg = EvalConfig(model=str(tiny_model), device="cpu", bootstrap=10, **{option: str(path)})
        with pytest.raises(ConfigError, match=rf"--{option} .*{path.name}: is one of the input files of the data set"):
            run_eval(cfg, str(pairs_dir))
    assert truth.read_bytes() == before
    # Nor through a link to it (reports/latest.csv -> the data set's ground truth; a probe helper).
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "latest.csv").symlink_to(truth)
    cfg = EvalConfig(model=str(tiny_model), device="cpu", bootstrap=10, csv=str(tmp_path / "reports" / "latest.csv"))
    with pytest.raises(ConfigError, match=r"--csv .*latest\.csv: is one of the input files of the data set"):
        run_eval(cfg, str(pairs_dir))
    assert truth.read_bytes() == before
    # A report beside the lines, written again by a second run, is no file of the data set.
    cfg = EvalConfig(model=str(tiny_model), device="cpu", bootstrap=10, json=str(pairs_dir / "report.json"))
    assert run_eval(cfg, str(pairs_dir)).analysed.report.lines > 0


def test_csv_text_cells_that_a_spreadsheet_would_run_as_formulas_are_escaped_and_numbers_are_not(tmp_path):
    report = score_texts(["=HYPERLINK(1)", "@id"], ["+1 2", "\tref"], ["-2+3", "plain"])
    write_lines_csv(report, tmp_path / "lines.csv")
    rows = list(csv.DictReader((tmp_path / "lines.csv").open(encoding="utf-8", newline="")))
    assert [(r["id"], r["reference"], r["hypothesis"]) for r in rows] == [
        ("'=HYPERLINK(1)", "'+1 2", "'-2+3"), ("'@id", "'\tref", "plain")]
    first = report.results[0]
    assert rows[0]["chars"] == str(first.chars) and float(rows[0]["cer"]) == pytest.approx(first.cer, abs=1e-4)


def test_a_breakdown_that_puts_no_line_in_a_subset_is_warned_about_not_left_out_in_silence(tiny_model, pairs_dir,
                                                                                          caplog):
    from hwr.scoring.evaluate import EvalConfig
    from hwr.scoring.report.run import run_eval

    for setting, said in (({"group_by": "nosuchfield"}, "--group-by nosuchfield: no line has that field"),
                          ({"group_by": "id:^zzz"}, "--group-by id:^zzz: the pattern matches no line id")):
        caplog.clear()
        with caplog.at_level("WARNING"):
            run_eval(EvalConfig(model=str(tiny_model), device="cpu", bootstrap=10, **setting), str(pairs_dir))
        assert said in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # a field the lines have: no warning
        run_eval(EvalConfig(model=str(tiny_model), device="cpu", bootstrap=10, group_by="none"), str(pairs_dir))
    assert "no breakdown" not in caplog.text


def test_control_characters_in_references_are_warned_of_and_printed_escaped(tiny_model, tmp_path, capsys, caplog):
    """A stray tab, a lone carriage return (old Mac text) or an ESC in a reference was scored in
    silence, and the worst lines printed it raw: the ESC sequence drove the terminal."""
    data = _pairs(tmp_path / "data", ["curtail\x1b[2Jlaughingly", "big\thill", "one two"])
    with caplog.at_level("WARNING"):
        code = main(["eval", str(data), "--model", str(tiny_model), "--device", "cpu", "--decoder", "greedy",
                     "--bootstrap", "10", "--worst", "3"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "\x1b" not in stdout and "\t" not in stdout
    assert "curtail\\x1b[2Jlaughingly" in stdout and "big\\x09hill" in stdout
    assert "2 references hold invisible characters" in caplog.text
    assert "(ESC)" in caplog.text and "(TAB)" in caplog.text


def test_a_first_group_that_takes_no_part_in_the_match_is_no_subset():
    """`--group-by 'id:(a)|(line)'`: group 1 is None for "line-01"; it crashed the HTML report
    and was written "None" in the CSV (a probe helper)."""
    import re

    from hwr.scoring.report.breakdown import NO_SUBSET, _id_match

    pattern = re.compile("(a)|(line)")
    assert _id_match(pattern, "line-01") == NO_SUBSET and _id_match(pattern, "a-01") == "a"
