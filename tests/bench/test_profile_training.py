"""bench/profile_training.py's GPU accounting: kernel busy time as the union of kernel time
ranges, and synchronize calls counted. Not tested here: a real GPU trace (bench/gpu_stage.sh)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch.autograd import DeviceType

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "profile_training.py"


@pytest.fixture(scope="module")
def profile_training():
    spec = importlib.util.spec_from_file_location("profile_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _event(name, device_type, start, end, annotation=False):
    return SimpleNamespace(name=name, device_type=device_type, is_user_annotation=annotation,
                           time_range=SimpleNamespace(start=start, end=end))


def test_overlapping_kernels_count_their_busy_time_once(profile_training):
    assert profile_training.busy_seconds([(0, 1e6), (5e5, 1.5e6), (3e6, 4e6)]) == pytest.approx(2.5)
    assert profile_training.busy_seconds([]) == 0.0


def test_only_kernels_are_gpu_time_and_synchronize_calls_are_counted(profile_training):
    events = [
        _event("volta_sgemm", DeviceType.CUDA, 0, 2e5),
        _event("ProfilerStep#3", DeviceType.CUDA, 0, 1e6, annotation=True),  # spans the step
        _event("aten::mm", DeviceType.CPU, 0, 3e5),  # the launching op, not GPU time
        _event("cudaStreamSynchronize", DeviceType.CPU, 4e5, 5e5),
        _event("cudaDeviceSynchronize", DeviceType.CPU, 6e5, 7e5),
        _event("cudaLaunchKernel", DeviceType.CPU, 0, 1e3),
    ]
    kernel_s, syncs = profile_training.gpu_activity(events)
    assert kernel_s == pytest.approx(0.2) and syncs == 2


def test_host_seconds_sums_the_named_cpu_ranges_once(profile_training):
    fetch = profile_training.LOADER_FETCH + "#_MultiProcessingDataLoaderIter.__next__"
    events = [
        _event(fetch, DeviceType.CPU, 0, 3e5),
        _event(fetch, DeviceType.CPU, 1e6, 1.1e6),
        _event(fetch, DeviceType.CPU, 1e6, 1.05e6),  # nested in the one before
        _event("aten::mm", DeviceType.CPU, 0, 9e5),
        _event(fetch, DeviceType.CUDA, 0, 5e6),  # not host time
    ]
    assert profile_training.host_seconds(events, profile_training.LOADER_FETCH) == pytest.approx(0.4)
    assert profile_training.host_seconds(events, "Synchronize") == 0.0
