"""export_dataset: IAM and pairs layouts on disk, re-read with the project's readers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hwr.cli import main
from hwr.datasets.iam import read_iam
from hwr.datasets.pairs import read_pairs
from hwr.errors import ConfigError
from hwr.recognition.charset import Charset
from hwr.synth import LineSynthesizer
from hwr.synth.export import export_dataset


def test_iam_export_reads_back(tmp_path):
    export_dataset(tmp_path, 5, fmt="iam", seed=4, progress=False)
    lines_txt = (tmp_path / "ascii" / "lines.txt").read_text()
    rows = [r for r in lines_txt.splitlines() if r and not r.startswith("#")]
    assert len(rows) == 5 and lines_txt.startswith("#--- lines.txt")
    fields = rows[0].split()
    assert fields[0] == "s00-000-00" and fields[1] == "ok" and all(f.isdigit() for f in fields[2:8])
    # IAM labels cannot hold '|' (the word separator): exports draw from the charset without it.
    expected = LineSynthesizer(seed=4, charset=Charset([s for s in Charset().symbols if s != "|"]))
    samples = read_iam(tmp_path)
    assert [s.id for s in samples] == [f"s00-000-{k:02d}" for k in range(5)]
    for k, sample in enumerate(samples):
        want = expected.sample(k)
        assert sample.text == want.text
        assert np.array_equal(np.asarray(Image.open(sample.image)), want.image)
    assert json.loads((tmp_path / "synth-config.json").read_text())["seed"] == 4
    assert not list(tmp_path.rglob("*.tmp"))


def test_pairs_export_reads_back(tmp_path):
    export_dataset(tmp_path, 5, fmt="pairs", seed=4, split="val", progress=False)
    samples = read_pairs(tmp_path)
    expected = LineSynthesizer(seed=4, split="val")
    assert len(samples) == 5
    for k, sample in enumerate(samples):
        want = expected.sample(k)
        assert sample.id == want.id and sample.text == want.text
        assert np.array_equal(np.asarray(Image.open(sample.image)), want.image)


def test_page_export_writes_pages_and_their_lines(tmp_path):
    export_dataset(tmp_path, 1, fmt="pairs", pages=True, seed=1, progress=False)
    (page_json,) = (tmp_path / "pages").glob("*.json")
    data = json.loads(page_json.read_text())
    image = Image.open(page_json.with_suffix(".png"))
    assert image.size == (data["width"], data["height"])
    samples = read_pairs(tmp_path / "lines")
    assert [s.text for s in samples] == [line["text"] for line in data["lines"]]
    assert [s.id for s in samples] == [line["id"] for line in data["lines"]]


def test_a_non_empty_folder_that_is_no_export_is_refused_untouched(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["synth", "--out", str(tmp_path), "--n", "1", "--no-progress"]) == 2
    assert f"{tmp_path}: folder exists, is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_export_with_other_settings_is_not_mixed_in(tmp_path):
    export_dataset(tmp_path, 2, seed=1, progress=False)
    with pytest.raises(ConfigError, match="other settings \\(seed differ\\)"):
        export_dataset(tmp_path, 2, seed=2, progress=False)
    assert len(read_pairs(tmp_path)) == 2


def test_an_interrupted_export_says_so_and_the_same_command_finishes_it(tmp_path, monkeypatch):
    rendered = []
    real_sample = LineSynthesizer.sample

    def sample(self, index):
        if index == 2 and not rendered.count("stop"):
            rendered.append("stop")
            raise KeyboardInterrupt
        rendered.append(index)
        return real_sample(self, index)

    monkeypatch.setattr(LineSynthesizer, "sample", sample)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(tmp_path, 4, seed=3, progress=False)
    assert json.loads((tmp_path / "synth-config.json").read_text())["complete"] is False
    export_dataset(tmp_path, 4, seed=3, progress=False)
    assert rendered == [0, 1, "stop", 2, 3]  # lines already written are not drawn again
    assert json.loads((tmp_path / "synth-config.json").read_text())["complete"] is True
    assert [s.id for s in read_pairs(tmp_path)] == [LineSynthesizer(seed=3).sample_id(k) for k in range(4)]


def test_a_negative_seed_is_refused_naming_the_flag():
    from hwr.errors import ConfigError
    from hwr.synth.export import SynthExportConfig

    with pytest.raises(ConfigError, match="--seed must be at least 0"):  # numpy's traceback at the first line
        SynthExportConfig(out="o", n=1, seed=-1)
    with pytest.raises(ConfigError, match="--processes must be at least 1"):
        SynthExportConfig(out="o", n=1, processes=0)


def _files(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_export_rendered_by_processes_is_the_export_rendered_here(tmp_path, monkeypatch):
    """Pages in IAM layout: the pages cross from the workers whole, their lines cut here."""
    from hwr.synth import parallel

    monkeypatch.setattr(parallel, "MIN_LINES_TO_SHARE", 1)
    for processes in (1, 2):
        export_dataset(tmp_path / str(processes), 2, fmt="iam", pages=True, seed=6, split="val", progress=False,
                       processes=processes)
    assert _files(tmp_path / "1") == _files(tmp_path / "2") and len(_files(tmp_path / "1")) > 4

