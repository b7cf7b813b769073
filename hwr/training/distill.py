"""Knowledge distillation: a larger trained model (the teacher) guides a smaller one frame by frame.

The small default network cannot fit the synthetic data as well as `hwr-en-base` does (its
training error stays near its validation error: bias, not variance). Beside the CTC loss on the
true text, the student is pulled towards the teacher's per-frame distribution over symbols
(Hinton et al. 2015; for CTC, frame-level distillation as in Takashima et al., ICASSP 2018). That
is only meaningful when both networks emit one frame for the same stretch of the line and place
their symbol peaks alike: same charset, same line normalisation and the same width downsampling,
which `Teacher.load` checks (the CRNN presets share their pooling, and measured on stage-14
`hwr-en-small` against `hwr-en-base`, their frame-wise best symbols agree on 96% of frames).
"""

from __future__ import annotations

import torch

from hwr.errors import ConfigError
from hwr.recognition.imaging import NormalizeConfig
from hwr.recognition.model import ModelConfig, Recognizer

# Widths at which the frame counts of teacher and student are compared: enough to catch a
# different downsampling factor or rounding.
_PROBE_WIDTHS = (1, 7, 8, 9, 31, 64, 255, 1000)


class Teacher:
    """A frozen network whose per-frame symbol distributions the student learns to match."""

    def __init__(self, net: torch.nn.Module, source: str, temperature: float):
        self.net = net
        self.source = source
        self.temperature = temperature

    @classmethod
    def load(cls, source: str, student: torch.nn.Module, student_config: ModelConfig, device: torch.device,
             temperature: float) -> Teacher:
        """The model at `source` (a folder or shipped name) in inference mode on `device`; a
        ConfigError when its frames cannot be matched to the student's one to one."""
        teacher = Recognizer.load(source, device=str(device))
        config = teacher.config
        if config.charset != student_config.charset:
            raise ConfigError(f"teacher {source}: its charset differs from the student's; distillation "
                              "matches their symbol distributions one to one")
        if NormalizeConfig.from_dict(config.normalize) != NormalizeConfig.from_dict(student_config.normalize):
            raise ConfigError(f"teacher {source}: it normalises lines differently from the student "
                              f"({config.normalize} against {student_config.normalize})")
        widths = torch.tensor(_PROBE_WIDTHS)
        if not torch.equal(teacher.net.frame_counts(widths), student.frame_counts(widths)):
            raise ConfigError(f"teacher {source}: it emits a different number of frames per line width than "
                              "the student (another width downsampling); frame-level distillation needs the same")
        for parameter in teacher.net.parameters():
            parameter.requires_grad_(False)
        return cls(teacher.net, str(teacher.path or source), temperature)

    @torch.no_grad()
    def log_probs(self, images: torch.Tensor, widths: torch.Tensor, autocast: torch.dtype | None = None
                  ) -> torch.Tensor:
        """(T, N, C) log-probabilities of the teacher at its temperature, float32 (the network read
        under `autocast`, the training step's lower precision, when given)."""
        with torch.autocast(device_type=images.device.type, dtype=autocast or torch.float32,
                            enabled=autocast is not None):
            logits, _ = self.net(images, widths)
        return (logits.float() / self.temperature).log_softmax(2)


def distillation_loss(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, frames: torch.Tensor,
                      target_lengths: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) over each line's real frames (padding left out), summed per line
    and divided by the line's text length, like the CTC loss's "mean" reduction, so that the two
    losses weigh lines alike; times temperature^2, which keeps the gradient's scale independent
    of the temperature (Hinton et al.)."""
    student_log_probs = (student_logits.float() / temperature).log_softmax(2)
    per_frame = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(2)  # (T, N)
    steps = torch.arange(per_frame.shape[0], device=per_frame.device).unsqueeze(1)
    # The counts live on the host; copied without waiting for the GPU's queue (a blocking copy
    # made each --teacher step wait for the forward passes queued before it).
    real = steps < frames.to(per_frame.device, non_blocking=True).unsqueeze(0)
    per_line = (per_frame * real).sum(0) / target_lengths.to(per_frame.device, non_blocking=True).clamp(min=1)
    return per_line.mean() * temperature ** 2
