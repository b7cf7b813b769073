"""`hwr.scoring.report.run` helpers that need no model. Whole runs are tested through the CLI
(tests/scoring/test_evaluate.py, tests/test_cli.py), not here."""
import logging

import pytest

from hwr.errors import ConfigError
from hwr.records import LineSample
from hwr.scoring.evaluate import EvalConfig
from hwr.scoring.report.run import dataset_specs, parse_splits, warn_invisible_characters


def test_references_with_invisible_characters_are_named_in_a_warning(caplog):
    samples = [LineSample("plain", "the cat", "a.png"), LineSample("zwsp", "the\u200bcat", "b.png"),
               LineSample("nbsp", "the\u00a0cat", "c.png")]
    with caplog.at_level(logging.WARNING, logger="hwr.scoring.eval"):
        assert warn_invisible_characters(samples) == ["zwsp", "nbsp"]
    assert "2 references" in caplog.text and "b.png (ZWSP)" in caplog.text and "c.png (NBSP)" in caplog.text


def test_a_split_named_twice_is_refused():
    assert [s.name for s in parse_splits("train=a,dev=b")] == ["train", "dev"]
    with pytest.raises(ConfigError, match="'Dev' twice"):
        parse_splits("dev=a,train=c,Dev=b")


def test_a_split_file_beside_splits_is_refused_not_ignored():
    cfg = EvalConfig(splits="dev=dev.lst", split_file="test.lst")
    with pytest.raises(ConfigError, match="--split-file and --splits"):
        dataset_specs(cfg, "iam:/data/IAM")


def test_a_human_or_target_cer_that_is_no_rate_is_refused():
    with pytest.raises(ConfigError, match="--human-cer must be a rate"):
        EvalConfig(human_cer=float("nan"))  # every verdict had read "misses"
    with pytest.raises(ConfigError, match="--target-cer must be a rate"):
        EvalConfig(target_cer=-0.1)
    assert EvalConfig(human_cer=0.02, target_cer=0.05).target_cer == 0.05


def test_a_synthetic_set_is_rendered_on_the_processes_asked_for_else_the_cores(monkeypatch):
    import hwr.datasets.synthetic as synthetic
    from hwr.scoring.report.run import DatasetSpec, load_dataset
    from hwr.synth import parallel

    asked = []

    def rendered(synthesizer, n, processes):
        asked.append(processes)
        return [synthesizer.sample(index) for index in range(n)]

    monkeypatch.setattr(synthetic, "render_lines", rendered)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(5)), raising=False)  # 5 cores
    spec = DatasetSpec("synth:val:3", "synth:val:3")
    loaded = load_dataset(spec, EvalConfig(render_processes=2))
    assert [s.meta["index"] for s in loaded.samples] == [0, 1, 2]
    load_dataset(spec, EvalConfig())
    assert asked == [2, 5]
    with pytest.raises(ConfigError, match="--render-processes must be at least 1"):
        EvalConfig(render_processes=0)


def test_splits_that_share_lines_are_named_in_a_warning(tmp_path, caplog):
    """`--splits train=A,dev=A` had given a bias/variance reading with no word (a probe helper)."""
    import numpy as np

    from hwr.scoring.report.run import DatasetSpec, LoadedDataset, warn_of_shared_lines

    def loaded(name, samples):
        return LoadedDataset(DatasetSpec(name, name), samples, [], 0, set())

    pixels = np.zeros((4, 4), np.uint8)
    page_line = {"file": f"{tmp_path / 'p.xml'}#l1"}
    train = loaded("train", [LineSample("a", "x", tmp_path / "a.png"), LineSample("p/l1", "y", pixels, page_line),
                             LineSample("synth-val-0-00000001", "z", pixels)])
    dev = loaded("dev", [LineSample("../a", "x", tmp_path / "x" / ".." / "a.png"),
                         LineSample("other/p/l1", "y", pixels, page_line)])
    test = loaded("test", [LineSample("synth-val-1-00000001", "z", pixels), LineSample("b", "x", tmp_path / "b.png")])
    with caplog.at_level(logging.WARNING, logger="hwr.scoring.eval"):
        warn_of_shared_lines([train, dev, test])
    assert "--splits: train and dev share 2 of their lines (3 and 2)" in caplog.text
    assert "test" not in caplog.text
