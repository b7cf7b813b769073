"""bench/gpu_busy.py: the GPU's busy share sampled beside a benchmark (nvidia-smi stood in for)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from gpu_busy import GpuBusy, main, smi_index  # noqa: E402


def fake_smi(tmp_path: Path, output: str, pause: float = 0.0) -> list[str]:
    """A stand-in for nvidia-smi that prints `output` and then, as the real one, samples on
    until it is stopped."""
    script = tmp_path / "fake_smi.py"
    script.write_text(f"import sys, time\nsys.stdout.write({output!r})\nsys.stdout.flush()\ntime.sleep(60)\n")
    return [sys.executable, str(script)]


def test_the_samples_of_a_gpu_run_give_its_busy_share(tmp_path):
    with GpuBusy("cuda:0", command=fake_smi(tmp_path, "10\n50\n[N/A]\n90\n")) as busy:
        import time

        deadline = time.monotonic() + 10
        while len(busy.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert busy.samples == [10.0, 50.0, 90.0]  # "[N/A]" is a missing sample, not a zero
    assert busy.describe() == "GPU busy 50% (median 50%, 3 samples)"
    assert busy.summary() == {"gpu_busy_percent": 50.0, "gpu_busy_median": 50.0, "gpu_busy_samples": 3}


def test_every_sample_printed_before_the_end_is_kept_and_turns_take_their_own(tmp_path):
    import time

    script = tmp_path / "flood.py"  # prints its samples at once, then waits to be stopped
    script.write_text("import sys, time\nsys.stdout.write('7\\n' * 5000)\nsys.stdout.flush()\ntime.sleep(60)\n")
    with GpuBusy("cuda", command=[sys.executable, str(script)]) as busy:
        time.sleep(1.5)  # written, not all read yet: the end must not take them from the reader
    assert len(busy.samples) == 5000
    assert busy.during([(0.0, busy.times[99])]).samples == [7.0] * 100
    assert busy.during([]).samples == []


def test_a_cpu_run_samples_nothing_and_says_nothing(tmp_path):
    with GpuBusy("cpu", command=fake_smi(tmp_path, "10\n")) as busy:
        pass
    assert busy.samples == [] and busy.describe() == "" and busy.summary() == {}
    assert GpuBusy(None).enabled is False


def test_without_nvidia_smi_the_figure_is_missing_not_the_benchmark(tmp_path):
    with GpuBusy("cuda", command=[str(tmp_path / "no-such-smi")]) as busy:
        pass
    assert busy.describe().startswith("GPU busy: not measured (")
    assert busy.summary()["gpu_busy_percent"] is None


def test_a_sampler_that_gives_nothing_is_named(tmp_path):
    with GpuBusy("cuda", command=[sys.executable, "-c", "import sys; sys.stderr.write('NVIDIA-SMI has failed')"]) as b:
        import time

        time.sleep(0.5)
    assert b.describe() == "GPU busy: not measured (NVIDIA-SMI has failed)"


def test_torch_device_numbers_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert smi_index(0) == "3" and smi_index(1) == "1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert smi_index(1) == "1"


def test_the_command_line_runs_the_command_and_keeps_its_exit_status(capsys):
    assert main(["--device", "cpu", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
