"""End to end through the real `hwr` CLI: train briefly, then eval and transcribe."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import render_line

WORDS = ["the", "cat", "sat", "on", "a", "mat", "big", "red", "dog", "ran"]


@pytest.fixture
def fifty_lines(tmp_path):
    folder = tmp_path / "lines"
    folder.mkdir()
    for i in range(50):
        text = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(1 + i % 3))
        Image.fromarray(render_line(text, size=22)).save(folder / f"l{i:02d}.png")
        (folder / f"l{i:02d}.gt.txt").write_text(text + "\n")
    return folder


def hwr(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "hwr", *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"hwr {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_train_eval_transcribe(tmp_path, fifty_lines):
    out = tmp_path / "run"
    hwr("train", "--train", fifty_lines, "--val", fifty_lines, "--out", out, "--preset", "tiny",
        "--max-steps", 60, "--val-every", 20, "--batch-size", 8, "--lr", 3e-3, "--warmup-steps", 5,
        "--workers", 0, "--device", "cpu", "--threads", 2)
    history = [json.loads(row) for row in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [20, 40, 60]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    model = out / "best"
    assert (model / "model.safetensors").exists() and (model / "config.json").exists()

    proc = hwr("eval", fifty_lines, "--model", model, "--csv", tmp_path / "lines.csv", "--json", tmp_path / "r.json",
               "--device", "cpu", "--worst", 3)
    assert "CER" in proc.stdout and "worst 3 lines" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["lines"] == 50 and 0.0 <= report["cer"] <= 1.5
    # Read as every command reads an ASCII model by default, and the report says so.
    assert report["decoding"]["decoder"] == "beam" and report["decoding"]["lm"] == "char-6gram.arpa.gz"
    assert "decoding: beam search (char mode, char-6gram.arpa.gz" in proc.stdout
    assert report["decoding"]["width_variants"] == [1.3] and report["decoding"]["width_variants_below"] == 0.95
    assert "lines read with confidence below 0.95 read again at 1.3 times their width" in proc.stdout
    assert len((tmp_path / "lines.csv").read_text().splitlines()) == 51

    (fifty_lines / "broken.png").write_bytes(b"not an image")
    proc = hwr("transcribe", fifty_lines / "l00.png", fifty_lines / "broken.png", fifty_lines / "l01.png",
               "--model", model, "--json", tmp_path / "t.json", "--device", "cpu", check=False)
    assert proc.returncode == 1  # one input failed, the others were still read
    assert "broken.png" in proc.stderr
    result = json.loads((tmp_path / "t.json").read_text())
    assert [line["source"].endswith(n) for line, n in zip(result["lines"], ["l00.png", "l01.png"])] == [True, True]
    assert result["failures"][0]["source"].endswith("broken.png")
    assert all(0.0 <= line["confidence"] <= 1.0 for line in result["lines"])


def test_resume_continues_from_last_state(tmp_path, fifty_lines):
    out = tmp_path / "run"
    common = ["--train", fifty_lines, "--val", fifty_lines, "--out", out, "--preset", "tiny", "--val-every", 10,
              "--batch-size", 8, "--workers", 0, "--device", "cpu"]
    hwr("train", *common, "--max-steps", 10)
    hwr("train", *common, "--max-steps", 20, "--resume")
    steps = [json.loads(row)["step"] for row in (out / "history.jsonl").read_text().splitlines()]
    assert steps == [10, 20]
    state = json.loads((out / "last" / "trainer_state.json").read_text())
    assert state["trainer"]["step"] == 20


def test_help_texts_read_clearly():
    for cmd in ([], ["train"], ["eval"], ["transcribe"], ["synth"]):
        proc = hwr(*cmd, "--help")
        assert "usage: hwr" in proc.stdout
    assert "--max-minutes" in hwr("train", "--help").stdout


def test_the_top_level_help_lists_every_command_without_importing_torch():
    """`hwr --help` had imported every command's settings, and with them torch: seconds for a list."""
    code = ("import sys\nfrom hwr.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip() == "False"
    from hwr.cli import COMMANDS

    assert all(re.search(rf"^ +{command}\b", proc.stdout, re.M) for command in COMMANDS)


@pytest.mark.parametrize("command", ["transcribe", "eval", "ui", "train", "adapt", "average"])
def test_the_commands_help_and_flag_errors_come_without_importing_torch(command):
    """Their settings had lived beside the model, the page pipeline and the training loop, which
    import torch: `hwr transcribe --help` or a mistyped flag took 4-7 seconds to answer, `hwr train
    --help` 4 (now well under one)."""
    positional = {"transcribe": ["page.png"], "adapt": ["lines/"], "average": ["a", "b"]}.get(command, [])
    typo = [command, *positional, "--fromat"]
    code = (f"import sys\nfrom hwr.cli import main\nfor argv in (['{command}', '--help'], {typo!r}):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "False"
    assert f"usage: hwr {command}" in proc.stdout and "unrecognized arguments: --fromat" in proc.stderr


@pytest.mark.parametrize("argv, command", [
    (["eval", "synth:val:4", "--decoder", "greedy"], "eval"), (["-v"], ""), (["nope", "eval"], ""), ([], "")])
def test_only_the_named_commands_flags_are_built(argv, command):
    from hwr.cli import build_parser, command_named

    assert command_named(argv) == command
    if command:
        whole = build_parser().parse_args(argv)
        assert build_parser(only=command).parse_args(argv) == whole


def test_missing_model_and_bad_dataset_fail_clearly(tmp_path, fifty_lines):
    proc = hwr("transcribe", fifty_lines / "l00.png", "--model", tmp_path / "nomodel", check=False)
    assert proc.returncode == 2 and "nomodel" in proc.stderr and "Traceback" not in proc.stderr


def test_main_reports_the_projects_errors_and_lets_bugs_show_their_traceback(monkeypatch, capsys):
    """A user error (an HwrError) is one line and exit 2; a ValueError from a bug is not swallowed."""
    from hwr import cli
    from hwr.errors import ConfigError

    def user_error(args):
        raise ConfigError("--thing: not a thing")

    def bug(args):
        raise ValueError("list index confusion")

    monkeypatch.setitem(cli.COMMANDS, "synth", user_error)
    assert cli.main(["synth", "--out", "x"]) == 2
    assert "hwr synth: error: --thing: not a thing" in capsys.readouterr().err
    monkeypatch.setitem(cli.COMMANDS, "synth", bug)
    with pytest.raises(ValueError, match="list index confusion"):
        cli.main(["synth", "--out", "x"])


def test_a_missing_lm_file_is_a_user_error(untrained_model, tmp_path, capsys):
    from PIL import Image

    from hwr.cli import main

    Image.fromarray(render_line("the cat")).save(tmp_path / "line.png")
    code = main(["transcribe", str(tmp_path / "line.png"), "--model", str(untrained_model), "--device", "cpu",
                 "--decoder", "beam", "--lm", str(tmp_path / "missing.arpa")])
    assert code == 2 and "missing.arpa: language model file not found" in capsys.readouterr().err


def test_an_lm_kenlm_cannot_load_is_refused_at_build_and_named_at_decoding(untrained_model, tmp_path, capsys):
    from PIL import Image

    from hwr.cli import main

    (tmp_path / "corpus.txt").write_text("the cat sat\n", encoding="utf-8")
    assert main(["lm", "build", str(tmp_path / "corpus.txt"), "--out", str(tmp_path / "7.arpa"), "--order", "7"]) == 2
    assert "--order must be from 2 to 6" in capsys.readouterr().err and not (tmp_path / "7.arpa").exists()
    Image.fromarray(render_line("the cat")).save(tmp_path / "line.png")
    (tmp_path / "notes.arpa").write_text("not a language model\n", encoding="utf-8")
    code = main(["transcribe", str(tmp_path / "line.png"), "--model", str(untrained_model), "--device", "cpu",
                 "--decoder", "beam", "--lm", str(tmp_path / "notes.arpa")])
    err = capsys.readouterr().err
    assert code == 2 and "notes.arpa: cannot load the language model: not an ARPA file" in err
    assert "Traceback" not in err


def test_every_command_setting_carries_its_help_on_the_field():
    # Help lives on the dataclass fields (no help dicts in the CLI that can drift from them).
    import dataclasses

    from hwr.documents.transcribe import TranscribeConfig
    from hwr.scoring.evaluate import EvalConfig
    from hwr.training.adapt import AdaptConfig
    from hwr.training.train import TrainConfig
    from hwr.ui_cli import UIConfig

    for cls in (TranscribeConfig, EvalConfig, TrainConfig, AdaptConfig, UIConfig):
        missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
        assert not missing, f"{cls.__name__} fields without help: {missing}"


# --- outputs: checked before the work, never lost to a closed stdout -------------------------

def _lines_folder(folder, texts=("the cat", "a big dog", "red and blue")):
    folder.mkdir()
    for k, text in enumerate(texts):
        Image.fromarray(render_line(text)).save(folder / f"l{k}.png")
        (folder / f"l{k}.gt.txt").write_text(text + "\n")
    return folder


def test_output_paths_that_cannot_be_written_are_refused_before_the_work(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    model = ["--model", str(untrained_model), "--device", "cpu"]
    cases = [(["transcribe", str(lines), "--output-dir", str(tmp_path / "afile")], "--output-dir", "is a file"),
             (["transcribe", str(lines), "--errors", str(tmp_path / "adir")], "--errors", "is a folder"),
             (["transcribe", str(lines), "--json", str(tmp_path / "adir")], "--json", "is a folder"),
             (["eval", str(lines), "--json", str(tmp_path / "adir")], "--json", "is a folder"),
             (["eval", str(lines), "--csv", str(tmp_path / "afile" / "x.csv")], "--csv", "afile"),
             (["adapt", str(lines), "--out", str(tmp_path / "afile")], "afile", "is a file")]
    for argv, option, reason in cases:
        assert main(argv + model) == 2, argv
        err = capsys.readouterr().err
        assert option in err and reason in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "lines"]  # nothing half-written
    assert not any((tmp_path / "adir").iterdir())


def test_a_reader_that_goes_away_costs_the_printout_not_the_batch(untrained_model, tmp_path):
    """`hwr transcribe 'lines/*.png' | head -1`: the batch goes on and writes every output."""
    lines = _lines_folder(tmp_path / "lines", [f"line {k}" for k in range(12)])
    out, report = tmp_path / "out", tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "hwr", "transcribe", str(lines / "*.png"), "--mode", "line",
                             "--model", str(untrained_model), "--device", "cpu", "--batch-size", "1",
                             "--workers", "0", "--output-dir", str(out), "--json", str(report), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader is gone: later prints meet a broken pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    # A glob stands for several files: each text comes with its file.
    assert first.startswith(str(lines)) and "\t" in first
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert len(list(out.glob("*.txt"))) == 12 and len(json.loads(report.read_text())["lines"]) == 12


def test_resume_keeps_the_earlier_runs_lines_in_the_json(untrained_model, tmp_path):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(out), "--json", str(report), "--no-progress"]
    assert main(argv) == 0
    first = {line["source"]: line["text"] for line in json.loads(report.read_text())["lines"]}
    (out / "l1.txt").unlink()  # l1 is read again; l0 and l2 are skipped as done
    assert main(argv + ["--resume"]) == 0
    again = {line["source"]: line["text"] for line in json.loads(report.read_text())["lines"]}
    assert again == first and len(again) == 3


def test_a_transcribe_into_a_folder_another_run_writes_is_refused_leaving_its_report_alone(untrained_model,
                                                                                             tmp_path, capsys):
    from hwr.cli import main

    from helpers import held_by_another_process

    lines = _lines_folder(tmp_path / "lines")
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(out), "--json", str(report), "--no-progress"]
    assert main(argv) == 0
    before = report.read_bytes()
    with held_by_another_process(out):
        assert main(argv + ["--resume"]) == 2
    assert "out: another hwr run is writing its outputs there" in capsys.readouterr().err
    # The refused run wrote nothing: not an empty report over the other run's, nor its journal.
    assert report.read_bytes() == before and not list(tmp_path.glob("report.json.*"))


def test_resume_keeps_the_json_lines_when_the_input_folder_is_named_another_way(untrained_model, tmp_path,
                                                                                monkeypatch):
    """`lines` then `/abs/lines`: the earlier lines had been dropped, the report left empty."""
    from hwr.cli import main

    _lines_folder(tmp_path / "lines")
    monkeypatch.chdir(tmp_path)
    out, report = tmp_path / "out", tmp_path / "report.json"
    common = ["--mode", "line", "--model", str(untrained_model), "--device", "cpu", "--output-dir", str(out),
              "--json", str(report), "--no-progress"]
    assert main(["transcribe", "lines", *common]) == 0
    first = {Path(line["source"]).name: line["text"] for line in json.loads(report.read_text())["lines"]}
    assert main(["transcribe", str(tmp_path / "lines"), *common, "--resume"]) == 0
    lines = json.loads(report.read_text())["lines"]
    assert {Path(line["source"]).name: line["text"] for line in lines} == first and len(first) == 3
    assert all(line["source"].startswith(str(tmp_path)) for line in lines)  # in this run's spelling


def test_a_file_name_that_is_not_utf8_is_read_and_reported_like_any_other(untrained_model, tmp_path):
    """A Latin-1 name from an old archive (b"caf\\xe9.png"): Python holds its byte as a lone
    surrogate, which strict UTF-8 cannot write; the JSON outputs, errors.tsv, the journal
    and the report once crashed on it and lost the rest of the batch."""
    import os

    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    try:
        latin1 = os.fsdecode(os.fsencode(str(lines)) + b"/caf\xe9.png")
        os.rename(lines / "l1.png", latin1)
        with open(os.fsdecode(os.fsencode(str(lines)) + b"/b\xe9d.png"), "wb") as broken:
            broken.write(b"not an image")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(out), "--format", "json,txt", "--json", str(report), "--no-progress"]
    assert main(argv) == 1  # the broken file failed; every other input was read and written
    data = json.loads(report.read_text(encoding="utf-8"))
    assert sorted(line["source"] for line in data["lines"]) == sorted([latin1, str(lines / "l0.png"),
                                                                       str(lines / "l2.png")])
    assert [Path(f["source"]).name for f in data["failures"]] == [os.fsdecode(b"b\xe9d.png")]
    assert "\\udce9" in (out / "errors.tsv").read_text(encoding="utf-8")  # named, escaped
    page = json.loads(Path(os.fsdecode(os.fsencode(str(out)) + b"/caf\xe9.json")).read_text(encoding="utf-8"))
    assert page["source"] == latin1
    assert main(argv + ["--resume"]) == 1 and not (out / "report.json.part.jsonl").exists()
    # Printed too, where stdout is strict UTF-8 (macOS, an en_US.UTF-8 locale; pytest's capture is not).
    printed = subprocess.run([sys.executable, "-m", "hwr", *argv[:8], "--no-progress"], capture_output=True,
                             env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"}, timeout=300)
    assert printed.returncode == 1, printed.stderr.decode(errors="replace")[-2000:]
    assert b"caf\\udce9.png\t" in printed.stdout


def test_a_file_name_with_a_terminal_escape_is_printed_escaped_not_sent(untrained_model, tmp_path, capsys):
    import logging

    from hwr.cli import main
    from hwr.logs import TerminalSafeFormatter

    lines = _lines_folder(tmp_path / "lines")
    (lines / "l1.png").rename(lines / "l1\x1b[2J.png")  # ESC [2J: clear the screen
    (lines / "bad\x1b[2J\x07.png").write_bytes(b"not an image")
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 1
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err and "\x07" not in printed.err
    assert "l1\\x1b[2J.png\t" in printed.out and "bad\\x1b[2J\\x07.png" in printed.err
    record = logging.LogRecord("hwr.x", logging.ERROR, __file__, 1, "%s: not an image", ("bad\x1b[2J.png",), None)
    assert TerminalSafeFormatter("%(message)s").format(record) == "bad\\x1b[2J.png: not an image"


def test_eval_says_so_when_nothing_was_scored_or_a_reference_is_empty(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    model = ["--model", str(untrained_model), "--device", "cpu"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"")
    (broken / "a.gt.txt").write_text("the cat\n")
    assert main(["eval", str(broken), "--skip-bad"] + model) == 2
    assert "a.png" in capsys.readouterr().err
    lines = _lines_folder(tmp_path / "lines")
    (lines / "l1.gt.txt").write_text("\n")
    assert main(["eval", str(lines)] + model) == 0
    assert "an empty reference on 1 line (e.g. l1)" in capsys.readouterr().err


def test_lm_average_and_synth_check_their_files_before_the_work(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("\u4f60\u597d\u4e16\u754c\n")  # no character the model can write
    (tmp_path / "empty.txt").write_text("")
    cases = [
        (["lm", "build", str(tmp_path / "latin1.txt"), "--out", str(tmp_path / "lm.arpa")], "latin1.txt: not UTF-8"),
        (["lm", "build", str(tmp_path / "nofile.txt"), "--out", str(tmp_path / "lm.arpa")], "nofile.txt: text file"),
        (["lm", "build", str(tmp_path / "adir"), "--out", str(tmp_path / "lm.arpa")], "adir: is a folder"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "adir")], "--out"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--unit", "word", "--lexicon",
          str(tmp_path / "lex.txt"), "--words", str(tmp_path / "nowords.txt")], "nowords.txt"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--min-counts", "1,3,2"], "non-decreasing"),
        # A word list without a lexicon to join had been ignored, a missing one too.
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--unit", "word", "--words",
          str(tmp_path / "nowords.txt")], "--words adds words to the lexicon: give --lexicon FILE"),
        # A word list that is not UTF-8 had failed only once the LM was written (exit 2, "nothing done").
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--unit", "word", "--lexicon",
          str(tmp_path / "lex.txt"), "--words", str(tmp_path / "latin1.txt")], "latin1.txt: not UTF-8"),
        (["lm", "build", str(corpus), "--out", str(untrained_model / "config.json"), "--model", str(untrained_model)],
         "is one of the input files of the model"),
        (["average", str(untrained_model), str(untrained_model), "--out", str(untrained_model)],
         "is one of the models being averaged"),
        (["average", str(untrained_model), str(untrained_model), "--out", str(tmp_path / "afile")], "is a file"),
        (["synth", "--out", str(tmp_path / "afile"), "--n", "1"], "is a file"),
        (["synth", "--out", str(tmp_path / "nothing"), "--n", "0"], "--n must be at least 1, got 0"),
        (["lm", "build", str(foreign), "--out", str(tmp_path / "lm.arpa")],
         "foreign.txt: no text to estimate a language model from after dropping the characters"),
        (["lm", "build", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "lm.arpa")],
         "empty.txt: no text to estimate a language model from\n"),  # nothing dropped: just empty
        # An output that is an input would destroy it; two outputs of one name, one of them.
        (["lm", "build", str(corpus), "--out", str(corpus)], "is one of the input files"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--unit", "word", "--lexicon",
          str(tmp_path / "lm.arpa")], "is also the --out file"),
        (["average", str(untrained_model), str(untrained_model), "--out", str(tmp_path / "adir" / "..")],
         "folder exists and is not empty (use --overwrite"),
        (["average", str(untrained_model), str(tmp_path / "adir"), "--out", str(tmp_path / "mean")], "adir"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "lm.arpa").exists() and not (tmp_path / "lex.txt").exists()
    assert corpus.read_text() == "the cat sat on the mat\n"
    assert not (tmp_path / "mean").exists()  # the failed average left no empty folder


# --- eval: settings and outputs checked before the model loads (eval probe) ------------------

def test_no_report_replaces_a_file_of_the_model_or_its_lm(untrained_model, tmp_path, capsys):
    """`hwr eval --json m/model.safetensors` had replaced the weights it scored with its report."""
    from hwr.cli import main
    from hwr.recognition.decode import default_lm_dir

    lines = _lines_folder(tmp_path / "lines")
    (tmp_path / "lm.arpa").write_text("not read: refused first")
    weights = untrained_model / "model.safetensors"
    before = weights.read_bytes()
    model = ["--model", str(untrained_model), "--device", "cpu"]
    cases = [["eval", str(lines), "--json", str(weights)] + model,
             ["eval", str(lines), "--csv", str(tmp_path / "lm.arpa"), "--lm", str(tmp_path / "lm.arpa")] + model,
             ["eval", str(lines), "--html", str(weights), "--compare", str(untrained_model), "--model",
              str(tmp_path / "no-model")],
             ["transcribe", str(lines / "l0.png"), "--json", str(untrained_model / "config.json")] + model,
             # The shipped LM, read when --lm is unset (no model here: nothing could be written).
             ["eval", str(lines), "--json", str(default_lm_dir() / "char-6gram.arpa.gz"), "--model",
              str(tmp_path / "no-model")]]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "is one of the input files of the model or its language model" in err and "Traceback" not in err, err
    assert weights.read_bytes() == before and (tmp_path / "lm.arpa").read_text() == "not read: refused first"


def test_eval_outputs_may_not_overwrite_the_data_set_or_each_other(tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    manifest = tmp_path / "ok.tsv"
    manifest.write_text("".join(f"{lines}/l{k}.png\ttext\n" for k in range(3)))
    before = manifest.read_text()
    no_model = ["--model", str(tmp_path / "no-model"), "--device", "cpu"]
    cases = [(["eval", str(manifest), "--csv", str(manifest)], "--csv", "input files"),
             (["eval", f"manifest:{manifest}", "--html", str(manifest)], "--html", "input files"),
             (["eval", str(lines), "--json", str(tmp_path / "same.out"), "--csv", str(tmp_path / "same.out")],
              "--csv", "also the --json file")]
    for argv, option, reason in cases:
        assert main(argv + no_model) == 2, argv
        err = capsys.readouterr().err
        assert option in err and reason in err and "no-model" not in err, err
    assert manifest.read_text() == before and not (tmp_path / "same.out").exists()


def test_eval_refuses_bad_settings_and_files_before_the_model_loads(tmp_path, capsys):
    from hwr.cli import main

    import bad_inputs

    lines = _lines_folder(tmp_path / "lines")
    latin1 = bad_inputs.latin1_text(tmp_path / "groups.tsv", "l0\tcaf\xe9\n")
    no_model = ["--model", str(tmp_path / "no-model"), "--device", "cpu"]
    cases = [(["--batch-size", "0"], "--batch-size"), (["--bootstrap", "0"], "--bootstrap"),
             (["--worst", "-1"], "--worst"), (["--group-by", "id:("], "--group-by"),
             (["--groups-file", str(tmp_path / "missing.tsv")], "missing.tsv"),
             (["--groups-file", str(latin1)], "not UTF-8"),
             (["--pages", "--csv", str(tmp_path / "p.csv")], "--csv"),
             (["--pages", "--worst-csv", str(tmp_path / "w.csv")], "--worst-csv"),
             (["--width-variants", "1"], "--width-variants: the line as normalised (factor 1) is always read"),
             (["--width-variants-below", "0"], "--width-variants-below must be a positive number")]
    for extra, expected in cases:
        assert main(["eval", str(lines), *extra, *no_model]) == 2, extra
        err = capsys.readouterr().err
        assert expected in err and "no-model" not in err and "Traceback" not in err, err


def test_eval_counts_untranscribed_page_lines_apart_and_exits_0(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    page = tmp_path / "page"
    page.mkdir()
    Image.fromarray(render_line("the cat")).save(page / "p.png")
    height, width = render_line("the cat").shape
    box = f"0,0 {width - 1},0 {width - 1},{height - 1} 0,{height - 1}"
    (page / "p.xml").write_text(
        f'<PcGts><Page imageFilename="p.png" imageWidth="{width}" imageHeight="{height}"><TextRegion id="r">'
        f'<TextLine id="done"><Coords points="{box}"/><TextEquiv><Unicode>the cat</Unicode></TextEquiv></TextLine>'
        f'<TextLine id="todo"><Coords points="{box}"/><TextEquiv index="0"><Unicode></Unicode></TextEquiv>'
        "</TextLine></TextRegion></Page></PcGts>", encoding="utf-8")
    report = tmp_path / "r.json"
    assert main(["eval", str(page), "--model", str(untrained_model), "--device", "cpu", "--bootstrap", "10",
                 "--json", str(report)]) == 0
    err = capsys.readouterr().err
    assert "not scored: 1 line without a transcription yet" in err and "unreadable" not in err, err
    doc = json.loads(report.read_text())
    assert (doc["lines"], doc["untranscribed"], doc["failures"]) == (1, 1, 0)


# --- transcribe: settings checked before the work, interrupted runs, inputs that match nothing --

def test_transcribe_settings_that_cannot_work_are_refused_before_the_work(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    out = tmp_path / "out"
    # A model that does not exist: each case must fail on its setting, before the model loads.
    nomodel = [str(lines), str(lines / "l0.png"), "--model", str(tmp_path / "no-model"), "--device", "cpu"]
    model = [str(lines / "l0.png"), "--model", str(untrained_model), "--device", "cpu"]
    cases = [(["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
             (["--dpi", "0"], "--dpi must be at least 50, got 0"),
             (["--dpi", "10"], "--dpi must be at least 50, got 10"),  # 2x3-pixel pages, read in silence
             (["--workers", "-2"], "--workers must be at least 0"),
             (["--width-variants", "1.3", "1.3"], "--width-variants: a factor is given twice"),
             (["--width-variants", "9"], "--width-variants: each factor must be between 0.5 and 3.0, got 9.0"),
             (["--resume"], "--resume needs --output-dir"),
             (["--format", "pagexml"], "--format pagexml needs --output-dir"),  # had been ignored in silence
             (["--json", str(tmp_path / "r.tsv"), "--errors", str(tmp_path / "r.tsv")], "is also the --json file"),
             (["--output-dir", str(out), "--json", str(out / "errors.tsv")], "is also the --json file"),
             (["--json", str(lines / "l0.png")], "is one of the input files"),
             # A file the folder stands for, not named itself: it was written over.
             (["--json", str(lines / "l1.png")], "is one of the input files"),
             (["--errors", str(lines / "l1.png")], "is one of the input files"),
             (["--output-dir", str(out), "--format", "txt,json", "--json", str(out / "l1.json")],
              "--json " + str(out / "l1.json") + ": is also the output of"),
             # The page's output, renamed into place, would take the errors listed so far with it.
             (["--output-dir", str(out), "--errors", str(out / "l1.txt")],
              "--errors " + str(out / "l1.txt") + ": is also the output of"),
             # Over hwr's record of its outputs, every later run would take them for the user's.
             (["--output-dir", str(out), "--json", str(out / ".hwr-outputs.jsonl")],
              "--json " + str(out / ".hwr-outputs.jsonl") + ": is the record of the outputs hwr wrote"),
             (["--output-dir", str(out), "--errors", str(out / ".hwr-outputs.jsonl")],
              "--errors " + str(out / ".hwr-outputs.jsonl") + ": is the record of the outputs hwr wrote"),
             # Over the settings the pages were read with, --resume went on under others unwarned.
             (["--output-dir", str(out), "--errors", str(out / ".hwr-reading.settings")],
              "--errors " + str(out / ".hwr-reading.settings") + ": is the record of the settings"),
             (["--output-dir", str(out), "--json", str(out / ".hwr-reading.settings")],
              "--json " + str(out / ".hwr-reading.settings") + ": is the record of the settings")]
    for extra, message in cases:
        assert main(["transcribe", *nomodel, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "no-model" not in err and "Traceback" not in err, (extra, err)
    for extra, message in [(["--beam-size", "0"], "--beam-size must be at least 1"),
                           (["--beam-size", "-1"], "--beam-size must be at least 1"),
                           (["--lm-weight", "nan"], "--lm-weight must be a finite number"),
                           (["--blank-penalty", "inf"], "--blank-penalty must be a finite number")]:
        assert main(["transcribe", *model, "--decoder", "beam", "--lm", "none", *extra]) == 2, extra
        assert message in capsys.readouterr().err
    assert not out.exists() and (lines / "l0.png").stat().st_size > 100  # nothing written, no input lost


def test_an_input_that_matches_nothing_fails_the_batch_and_the_rest_is_read(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    nomatch = str(tmp_path / "nomatch" / "*.png")
    argv = ["transcribe", str(lines / "l0.png"), nomatch, "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 1
    assert "pattern matches no files" in capsys.readouterr().err
    assert (tmp_path / "out" / "l0.txt").is_file()
    assert nomatch in (tmp_path / "out" / "errors.tsv").read_text()
    assert main(argv[:1] + [nomatch] + argv[3:]) == 2  # nothing at all to read: as before
    assert "no input images found" in capsys.readouterr().err
    mistyped = str(lines / "l0.pgn")  # a file name that names nothing is the same case
    assert main(argv[:1] + [mistyped] + argv[3:]) == 2
    assert "no input images found" in capsys.readouterr().err
    assert main(argv[:1] + [mistyped, str(lines / "l1.png")] + argv[3:]) == 1
    assert "l0.pgn: file not found" in capsys.readouterr().err


def _five_lines_stopped_at_the_third(model, tmp_path, monkeypatch, stop: type[BaseException]):
    """A --json run over five line images whose third output raises `stop` (after its lines
    were read): the folder, the output folder, the report and the command line."""
    import hwr.cli

    lines = _lines_folder(tmp_path / "lines", [f"line {k}" for k in range(5)])
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(model), "--device", "cpu",
            "--output-dir", str(out), "--json", str(report), "--no-progress", "--workers", "0"]
    printed = []

    def stop_at_the_third(text):
        if len(printed) == 2:
            raise stop
        printed.append(text)

    monkeypatch.setattr(hwr.cli, "emit", stop_at_the_third)
    return lines, out, report, argv


def test_an_interrupted_run_keeps_its_lines_in_the_json_for_the_resume(untrained_model, tmp_path, monkeypatch,
                                                                        capsys):
    import hwr.cli

    lines, out, report, argv = _five_lines_stopped_at_the_third(untrained_model, tmp_path, monkeypatch,
                                                                KeyboardInterrupt)
    assert hwr.cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "hwr transcribe: interrupted: 3 inputs done; rerun with --resume to continue" in err, err
    done = {p.stem for p in out.glob("*.txt")}
    assert len(done) == 3 and {line["source"] for line in json.loads(report.read_text())["lines"]} == {
        str(lines / f"{stem}.png") for stem in done}
    monkeypatch.undo()
    assert hwr.cli.main(argv + ["--resume"]) == 0
    assert len(json.loads(report.read_text())["lines"]) == 5  # 3 from the interrupted run, 2 read now


def test_a_page_written_but_not_yet_shown_when_interrupted_is_in_the_json(untrained_model, tmp_path, monkeypatch):
    """Pages are journalled and written before their turn to be shown comes: the report of an
    interrupted run had held only the shown ones, and the --resume skipped the others as done."""
    import hwr.cli
    from hwr.documents.transcribe import TranscriptionResult

    lines, out, report, argv = _five_lines_stopped_at_the_third(untrained_model, tmp_path, monkeypatch,
                                                                KeyboardInterrupt)
    monkeypatch.undo()
    read, shown = TranscriptionResult.read, []

    def interrupted_before_the_third_is_shown(self, page_lines):
        if len(shown) == 2:
            raise KeyboardInterrupt
        shown.append(page_lines)
        read(self, page_lines)

    monkeypatch.setattr(TranscriptionResult, "read", interrupted_before_the_third_is_shown)
    assert hwr.cli.main(argv) == 130
    done = {str(lines / f"{p.stem}.png") for p in out.glob("*.txt")}
    assert len(done) == 3 and {line["source"] for line in json.loads(report.read_text())["lines"]} == done


class _Killed(BaseException):
    """A SIGKILL in a test: nothing after it runs (no report is written, no finally tidies)."""


def test_a_killed_run_leaves_its_lines_in_a_journal_that_the_resume_reads(untrained_model, tmp_path, monkeypatch,
                                                                          capsys):
    import hwr.cli

    lines, out, report, argv = _five_lines_stopped_at_the_third(untrained_model, tmp_path, monkeypatch, _Killed)

    def never_written(*args):
        raise _Killed

    monkeypatch.setattr(hwr.cli, "_write_line_json", never_written)
    with pytest.raises(_Killed):
        hwr.cli.main(argv)
    journal = tmp_path / "report.json.part.jsonl"
    assert len({p.stem for p in out.glob("*.txt")}) == 3 and not report.exists()
    assert len(journal.read_text().splitlines()) == 3
    with journal.open("a") as f:  # the kill cut a fourth record short
        f.write('{"source": "cut sh')
    monkeypatch.undo()
    capsys.readouterr()
    assert hwr.cli.main(argv + ["--resume"]) == 0
    assert "warning" not in capsys.readouterr().err
    sources = [line["source"] for line in json.loads(report.read_text())["lines"]]
    assert sorted(sources) == sorted(str(p) for p in lines.glob("*.png")) and len(sources) == 5
    assert not journal.exists()  # the report holds its lines now


def test_the_journal_keeps_the_last_record_of_an_input_and_the_report_yields_to_it(tmp_path):
    from hwr.documents.transcribe import LineJournal, LineTranscription, TranscriptionResult

    report = tmp_path / "r.json"
    earlier = TranscriptionResult([LineTranscription("a.png", "old a", 0.5), LineTranscription("b.png", "b", 0.5)])
    report.write_text(earlier.to_json())
    journal = LineJournal(report, keep=True)
    journal.add("a.png", [LineTranscription("a.png", "first a", 0.6)])
    journal.add("c\u2028d.png", [LineTranscription("c\u2028d.png", "c", 0.7)])  # a line separator in a name
    journal.add("a.png", [LineTranscription("a.png", "new a", 0.8)])  # read again by a later run
    now = TranscriptionResult()
    assert now.add_earlier(report, ["a.png", "b.png", "c\u2028d.png"]) == []
    assert {line.source: line.text for line in now.lines} == {"a.png": "new a", "b.png": "b", "c\u2028d.png": "c"}
    journal.close(remove=True)
    assert not journal.path.exists()
    fresh = LineJournal(report, keep=False)
    assert fresh.path.read_text() == ""  # a fresh run starts an empty one
    fresh.close(remove=True)


def test_a_second_run_writing_the_same_json_report_is_refused(untrained_model, tmp_path, capsys):
    """Two runs with one --json and other output folders had each emptied the other's journal,
    both exited 0, and one run's report was lost (a probe helper). The first run is played by this
    process: Linux's flock is held per open file, so a second open here is refused as another
    process would be (on NFS, where flock falls back to per-process locks, it would not be)."""
    from hwr.cli import main
    from hwr.documents.transcribe import LineJournal, LineTranscription

    report = tmp_path / "report.json"
    other = LineJournal(report, keep=False)  # the first run, still reading
    other.add("a.png", [LineTranscription("a.png", "a", 0.5)])
    lines = _lines_folder(tmp_path / "lines")
    assert main(["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
                 "--output-dir", str(tmp_path / "out2"), "--json", str(report), "--no-progress",
                 "--workers", "0"]) == 2
    assert f"{report}: another hwr run is writing this --json report" in capsys.readouterr().err
    assert other.path.read_text().count("a.png") == 2  # its journal untouched
    other.close(remove=True)


def test_a_record_torn_by_a_full_disk_does_not_swallow_the_next_runs_first_record(tmp_path):
    """A full disk cut a journal record short; the resumed run appended its first page to that
    torn line, the whole row was unreadable, and a kill before its report lost that page's lines
    (its outputs on disk, the next --resume skipped it)."""
    from hwr.documents.transcribe import LineJournal, LineTranscription, TranscriptionResult

    report = tmp_path / "r.json"
    earlier = LineJournal(report, keep=False)
    earlier.add("a.png", [LineTranscription("a.png", "a", 0.5)])
    earlier.close(remove=False)
    with earlier.path.open("a") as f:
        f.write('{"source": "b.png", "li')  # no space left for the rest
    resumed = LineJournal(report, keep=True)
    resumed.add("b.png", [LineTranscription("b.png", "b", 0.6)])
    resumed.close(remove=False)  # killed: no report
    now = TranscriptionResult()
    assert now.add_earlier(report, ["a.png", "b.png"]) == []
    assert {line.source: line.text for line in now.lines} == {"a.png": "a", "b.png": "b"}


def test_a_ctrl_c_while_the_command_line_is_read_says_interrupted(monkeypatch, capsys):
    """Reading the command line imports torch (the settings' defaults): a Ctrl-C in that second
    had printed a traceback through numpy's or torch's imports (a probe helper)."""
    import hwr.cli

    def importing_torch(only=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(hwr.cli, "build_parser", importing_torch)
    assert hwr.cli.main(["transcribe", "x.png"]) == 130
    assert capsys.readouterr().err == "hwr: interrupted\n"


def test_an_interrupted_run_without_an_output_folder_says_only_that(untrained_model, tmp_path, monkeypatch, capsys):
    import hwr.cli

    def interrupt(text):
        raise KeyboardInterrupt

    monkeypatch.setattr(hwr.cli, "emit", interrupt)
    lines = _lines_folder(tmp_path / "lines")
    assert hwr.cli.main(["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model),
                         "--device", "cpu", "--no-progress", "--workers", "0"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "hwr transcribe: interrupted"


def _disk_full_for(monkeypatch, *targets: Path):
    """Writing any of `targets` fails as on a full disk: its temp file is made, then the write
    fails naming no file, as write() does."""
    import errno
    import pathlib

    from hwr.fileio import _temp_path

    write_bytes, full = pathlib.Path.write_bytes, {_temp_path(t) for t in targets}

    def write(self, data):
        if self not in full:
            return write_bytes(self, data)
        write_bytes(self, data[:1])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", write)


def test_a_full_disk_stops_the_batch_with_one_line_naming_the_file(untrained_model, tmp_path, monkeypatch, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(out), "--no-progress", "--workers", "0"]
    _disk_full_for(monkeypatch, out / "l1.txt")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"hwr transcribe: error: cannot write {out / 'l1.txt'}: the disk is full (No space left on device)" in err
    assert "Traceback" not in err, err
    # What was written before is whole, and no temp file is left.
    assert (out / "l0.txt").is_file() and not (out / "l1.txt").exists() and not list(out.glob(".*.tmp"))
    monkeypatch.undo()
    _disk_full_for(monkeypatch, report)
    assert main(argv + ["--json", str(report)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {report}: the disk is full" in err and "Traceback" not in err, err
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    # A page and then the report: the page is the cause and is named; the report's lines are kept.
    _disk_full_for(monkeypatch, out / "l1.txt", report)
    assert main(argv + ["--overwrite", "--json", str(report)]) == 2
    err = capsys.readouterr().err
    assert f"hwr transcribe: error: cannot write {out / 'l1.txt'}: the disk is full" in err, err
    assert "the --json report was not written either" in err and "report.json.part.jsonl" in err, err
    assert (tmp_path / "report.json.part.jsonl").is_file()


def test_json_lists_the_words_of_a_line_image_whatever_the_formats(untrained_model, tmp_path):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines", ["the cat sat"])
    report = tmp_path / "report.json"
    assert main(["transcribe", str(lines / "l0.png"), "--mode", "line", "--model", str(untrained_model),
                 "--device", "cpu", "--no-progress", "--json", str(report), "--format", "txt"]) == 0
    line = json.loads(report.read_text())["lines"][0]
    assert line["text"].split() and [w["text"] for w in line["words"]] == line["text"].split(), line


def test_a_resume_says_so_when_the_earlier_json_lacks_skipped_lines(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(out), "--no-progress"]
    assert main(argv) == 0  # no --json the first time
    (out / "l1.txt").unlink()
    assert main(argv + ["--resume", "--json", str(report)]) == 0
    err = capsys.readouterr().err
    assert "holds no line of 2 inputs skipped as done (--resume)" in err, err


def test_a_text_file_hwr_did_not_write_is_replaced_only_with_overwrite(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines")
    (lines / "l0.txt").write_text("the cat, typed by hand\n")  # where l0.png's output would go
    argv = ["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(lines), "--no-progress", "--workers", "0"]
    assert main(argv) == 2 and main(argv + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert "l0.txt was not written by hwr" in err and "--overwrite" in err, err
    assert (lines / "l0.txt").read_text() == "the cat, typed by hand\n"
    assert main(argv + ["--overwrite"]) == 0
    assert (lines / "l0.txt").read_text() != "the cat, typed by hand\n"
    assert main(argv) == 0  # hwr's own outputs now: a rerun replaces them


def test_a_page_mode_resume_says_so_too_but_not_for_a_page_without_lines(untrained_model, tmp_path, capsys):
    import numpy as np

    from hwr.cli import main
    from hwr.synth import LineSynthesizer

    pages = tmp_path / "pages"
    pages.mkdir()
    Image.fromarray(LineSynthesizer(split="val", seed=5).sample_page(0, n_lines=3).image).save(pages / "text.png")
    Image.fromarray(np.full((300, 400), 255, np.uint8)).save(pages / "blank.png")  # no line: none in any --json
    out, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["transcribe", str(pages), "--mode", "page", "--model", str(untrained_model), "--device", "cpu",
            "--output-dir", str(out), "--no-progress", "--workers", "0"]
    assert main(argv) == 0
    report.write_text(json.dumps({"lines": [], "failures": []}))  # an earlier --json without those pages' lines
    assert main(argv + ["--resume", "--json", str(report)]) == 0
    err = capsys.readouterr().err
    assert "holds no line of 1 input skipped as done (--resume), e.g. " in err and "text.png" in err, err
    assert "blank.png" not in err.split("warning:")[1], err


def _session_processes(session: int) -> list[int]:
    """Processes still alive (not zombies) in the process group `session`."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == session and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_sigterm_stops_worker_processes_like_ctrl_c(untrained_model, tmp_path):
    """kill (SIGTERM) of `hwr transcribe --processes` leaves no worker, no resource tracker and no
    shared memory behind, and writes the --json of what was read."""
    import os
    import signal
    import time

    # Enough pages that the run is still going when the first outputs appear (the batcher's
    # pool of 64 lines is read, and written, before the next).
    lines = _lines_folder(tmp_path / "lines", [f"line number {k}" for k in range(400)])
    out, report = tmp_path / "out", tmp_path / "report.json"
    shm_before = {p.name for p in Path("/dev/shm").glob("hwr_pg_*")}
    proc = subprocess.Popen([sys.executable, "-m", "hwr", "transcribe", str(lines), "--mode", "page",
                             "--model", str(untrained_model), "--device", "cpu", "--workers", "1", "--processes",
                             "--batch-size", "1", "--output-dir", str(out), "--json", str(report),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*.txt")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and len(_session_processes(proc.pid)) >= 3, proc.stderr.read()  # + tracker, worker
        os.kill(proc.pid, signal.SIGTERM)  # the main process only, as `kill PID` does
        err = proc.communicate(timeout=120)[1]
        deadline = time.monotonic() + 20
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert re.search(r"interrupted: \d+ inputs? done.*; rerun with --resume to continue", err), err  # as Ctrl-C
        assert not _session_processes(proc.pid), err
        assert {p.name for p in Path("/dev/shm").glob("hwr_pg_*")} <= shm_before
        assert "lines" in json.loads(report.read_text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_a_tab_or_newline_in_a_file_name_keeps_one_line_per_image(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    lines = _lines_folder(tmp_path / "lines", ["first line", "second line"])
    (lines / "l0.png").rename(lines / "tab\there.png")
    (lines / "l1.png").rename(lines / "new\nline.png")
    assert main(["transcribe", str(lines), "--mode", "line", "--model", str(untrained_model), "--device", "cpu",
                 "--no-progress"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and all(row.count("\t") == 1 for row in rows), rows
    assert {row.split("\t")[0] for row in rows} == {str(lines / "new\\nline.png"), str(lines / "tab\\there.png")}


@pytest.mark.parametrize("argv, usage, hint", [
    (["transcribe", "page.png", "--fromat", "json"], "usage: hwr transcribe", "(did you mean --format?)"),
    (["transcribe", "--out", "o", "page.png"], "usage: hwr transcribe", "(did you mean --output-dir?)"),
    (["lm", "build", "corpus.txt", "--out", "lm.arpa", "--ordr", "3"], "usage: hwr lm build",
     "(did you mean --order?)"),
    (["transcribe", "--out", "o", "--fromat", "json", "page.png"], "usage: hwr transcribe",
     "(did you mean --out: --output-dir; --fromat: --format?)"),
    (["eval", "synth:val:4", "--modle=x"], "usage: hwr eval", "(did you mean --model?)"),
])
def test_an_unknown_or_abbreviated_flag_is_named_by_its_command_with_the_flag_meant(argv, usage, hint, capsys):
    """argparse reported unknown flags with the top-level usage (`hwr [-h] [--version] COMMAND`)
    and no hint, and took an abbreviation (`--out`) for the flag it began."""
    from hwr.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and hint in err and "unrecognized arguments" in err


def test_a_negative_number_in_exponent_form_is_a_value_not_a_flag():
    """argparse before Python 3.13 took `-1e2` for a flag: "--word-score: expected one argument"."""
    from hwr.cli import build_parser

    args = build_parser().parse_args(["transcribe", "x.png", "--word-score", "-1e2", "--sil-score", "-.5"])
    assert (args.word_score, args.sil_score) == (-100.0, -0.5)
