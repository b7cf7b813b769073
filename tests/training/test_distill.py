"""hwr.training.distill: the frame-level distillation loss, the teacher's checks, and a run that distils."""
import pytest
import torch

from hwr.errors import ConfigError
from hwr.recognition.imaging import NormalizeConfig, normalize_line
from hwr.recognition.model import load_model
from hwr.training.distill import Teacher, distillation_loss
from hwr.training.train import TrainConfig, train

from helpers import render_line


def _cfg(pairs_dir, tmp_path, out, **overrides):
    base = dict(train=str(pairs_dir), val=str(pairs_dir), out=str(tmp_path / out), preset="tiny",
                max_steps=4, val_every=4, batch_size=4, workers=0, device="cpu", warmup_steps=1)
    base.update(overrides)
    return TrainConfig(**base)


def _log_probs(logits, temperature=1.0):
    return (logits / temperature).log_softmax(2)


def test_the_loss_is_zero_when_the_student_matches_the_teacher_and_positive_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(10, 3, 6)
    frames, lengths = torch.tensor([10, 7, 4]), torch.tensor([3, 2, 1])
    assert float(distillation_loss(logits, _log_probs(logits), frames, lengths, 1.0)) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(torch.randn(10, 3, 6), _log_probs(logits), frames, lengths, 1.0)) > 0.1


def test_padding_frames_do_not_count_and_lines_are_weighed_by_their_text_length():
    torch.manual_seed(1)
    teacher, student = torch.randn(8, 2, 5), torch.randn(8, 2, 5)
    frames, lengths = torch.tensor([8, 5]), torch.tensor([4, 2])
    loss = distillation_loss(student, _log_probs(teacher), frames, lengths, 1.0)
    padded = student.clone()
    padded[5:, 1] = 100.0  # past line 2's last frame: padding
    assert torch.allclose(distillation_loss(padded, _log_probs(teacher), frames, lengths, 1.0), loss)
    # By hand: per line, the KL summed over its frames over its text length; then the mean.
    kl = (_log_probs(teacher).exp() * (_log_probs(teacher) - _log_probs(student))).sum(2)
    expected = (kl[:8, 0].sum() / 4 + kl[:5, 1].sum() / 2) / 2
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_the_temperature_softens_both_distributions_and_scales_by_its_square():
    torch.manual_seed(2)
    teacher, student = torch.randn(6, 1, 4), torch.randn(6, 1, 4)
    frames, lengths = torch.tensor([6]), torch.tensor([3])
    hot = distillation_loss(student, _log_probs(teacher, 3.0), frames, lengths, 3.0)
    plain = distillation_loss(student / 3.0, _log_probs(teacher / 3.0), frames, lengths, 1.0)
    assert float(hot) == pytest.approx(9 * float(plain), rel=1e-5)


@pytest.fixture
def tiny_teacher(pairs_dir, tmp_path):
    train(_cfg(pairs_dir, tmp_path, "teacher", max_steps=2, val_every=2))
    return tmp_path / "teacher" / "best"


def test_a_teacher_with_other_frames_or_symbols_is_refused(pairs_dir, tmp_path, tiny_teacher):
    student, student_config = load_model(tiny_teacher)
    four_to_a_frame = {"pool_blocks": [0, 1], "height_pool_blocks": []}
    train(_cfg(pairs_dir, tmp_path, "wide", max_steps=1, val_every=1, net_options=four_to_a_frame))
    with pytest.raises(ConfigError, match="different number of frames"):
        Teacher.load(str(tmp_path / "wide" / "best"), student, student_config, torch.device("cpu"), 1.0)
    train(_cfg(pairs_dir, tmp_path, "letters", max_steps=1, val_every=1, charset="data"))
    with pytest.raises(ConfigError, match="charset differs"):
        Teacher.load(str(tmp_path / "letters" / "best"), student, student_config, torch.device("cpu"), 1.0)


def _kl_to(teacher_dir, student_dir, texts):
    """The student's mean divergence from the teacher over lines of these texts."""
    teacher, config = load_model(teacher_dir)
    student, _ = load_model(student_dir)
    norm = NormalizeConfig.from_dict(config.normalize)
    total = 0.0
    for text in texts:
        image = torch.from_numpy(normalize_line(render_line(text), norm))[None, None]
        widths = torch.tensor([image.shape[-1]])
        with torch.no_grad():
            target = _log_probs(teacher.eval()(image, widths)[0])
            logits = student.eval()(image, widths)[0]
        total += float(distillation_loss(logits, target, teacher.frame_counts(widths), torch.ones(1), 1.0))
    return total / len(texts)


def test_a_student_trained_on_the_teacher_alone_moves_towards_it(pairs_dir, tmp_path, tiny_teacher):
    """distill_weight 1: only the teacher's distributions are learned; the student's divergence
    from the teacher falls well below that of the same network trained on the text alone."""
    common = dict(max_steps=30, val_every=30, lr=3e-3, seed=5)
    train(_cfg(pairs_dir, tmp_path, "alone", **common))
    train(_cfg(pairs_dir, tmp_path, "taught", teacher=str(tiny_teacher), distill_weight=1.0, **common))
    texts = ("the cat", "a dog ran", "quick brown")
    assert _kl_to(tiny_teacher, tmp_path / "taught" / "best", texts) < \
        0.5 * _kl_to(tiny_teacher, tmp_path / "alone" / "best", texts)


@pytest.mark.parametrize("field,value,message", [("distill_weight", 1.5, "between 0 and 1"),
                                                 ("distill_temperature", 0.0, "above 0"),
                                                 ("distill_weight", float("nan"), "distill")])
def test_bad_distillation_settings_are_refused(field, value, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(train=str(tmp_path / "never-opened"), **{field: value})
