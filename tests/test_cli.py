"""End to end through the real `hwr` CLI: train briefly, then eval and transcribe."""
import json
import subprocess
import sys

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
    assert code == 2 and "missing.arpa: lm file not found" in capsys.readouterr().err


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
    assert "1 lines have an empty reference (e.g. l1)" in capsys.readouterr().err


def test_lm_average_and_synth_check_their_files_before_the_work(untrained_model, tmp_path, capsys):
    from hwr.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    cases = [
        (["lm", "build", str(tmp_path / "latin1.txt"), "--out", str(tmp_path / "lm.arpa")], "latin1.txt: not UTF-8"),
        (["lm", "build", str(tmp_path / "nofile.txt"), "--out", str(tmp_path / "lm.arpa")], "nofile.txt: text file"),
        (["lm", "build", str(tmp_path / "adir"), "--out", str(tmp_path / "lm.arpa")], "adir: is a folder"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "adir")], "--out"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--unit", "word", "--lexicon",
          str(tmp_path / "lex.txt"), "--words", str(tmp_path / "nowords.txt")], "nowords.txt"),
        (["lm", "build", str(corpus), "--out", str(tmp_path / "lm.arpa"), "--min-counts", "3,2"], "non-decreasing"),
        (["average", str(untrained_model), str(untrained_model), "--out", str(untrained_model)],
         "is one of the models being averaged"),
        (["average", str(untrained_model), str(untrained_model), "--out", str(tmp_path / "afile")], "is a file"),
        (["synth", "--out", str(tmp_path / "afile"), "--n", "1"], "is a file"),
        (["synth", "--out", str(tmp_path / "nothing"), "--n", "0"], "--n must be at least 1, got 0"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "lm.arpa").exists() and not (tmp_path / "lex.txt").exists()
