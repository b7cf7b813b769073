import numpy as np
import pytest

from hwr.scoring.report.bootstrap import bootstrap_interval, paired_bootstrap, resampled_rates


def _lines(n, cer=0.1, length=40, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(length // 2, length * 2, size=n)
    errors = rng.binomial(lengths, cer)
    return errors, lengths


def test_interval_contains_point_estimate():
    errors, lengths = _lines(200)
    point = errors.sum() / lengths.sum()
    ci = bootstrap_interval(errors, lengths, resamples=500)
    assert ci.low < point < ci.high
    assert 0.0 <= ci.low and ci.high <= 1.0


def test_interval_shrinks_with_more_lines():
    small = bootstrap_interval(*_lines(50), resamples=500)
    large = bootstrap_interval(*_lines(5000), resamples=500)
    assert large.high - large.low < (small.high - small.low) / 4  # ~1/sqrt(100) of the width


def test_seeded_and_degenerate_cases():
    errors, lengths = _lines(100)
    assert bootstrap_interval(errors, lengths, seed=3) == bootstrap_interval(errors, lengths, seed=3)
    assert bootstrap_interval([], []).as_list() == [0.0, 0.0]
    perfect = bootstrap_interval([0] * 20, [30] * 20)
    assert perfect.as_list() == [0.0, 0.0]
    assert resampled_rates([0, 0], [0, 0], resamples=10).tolist() == [0.0] * 10  # no characters, no errors


def test_resampling_in_blocks_keeps_every_resample(monkeypatch):
    import hwr.scoring.report.bootstrap as bootstrap

    monkeypatch.setattr(bootstrap, "_BLOCK_CELLS", 1000)  # 10 resamples of 100 lines per block
    assert resampled_rates(*_lines(100), resamples=95).shape == (95,)


def test_paired_test_finds_a_real_difference_and_not_a_fake_one():
    errors_a, lengths = _lines(300, cer=0.10)
    errors_b = np.maximum(errors_a - (lengths > 40), 0)  # b fixes one error on every long line
    better = paired_bootstrap(errors_a, errors_b, lengths, resamples=500)
    assert better.delta < 0 and better.interval.high < 0 and better.p_value < 0.01
    same = paired_bootstrap(errors_a, errors_a, lengths, resamples=500)
    assert same.delta == 0 and same.p_value == 1.0
    with pytest.raises(ValueError, match="same lines"):
        paired_bootstrap([1, 2], [1], [3, 3])
