"""Shared fixtures (the helpers they wrap are in helpers.py), and the `gpu` marker's skip."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image

# Re-exported for test modules that still write `from conftest import ...`; new code imports helpers.
from helpers import LINE_TEXTS, REPO, free_port, make_untrained_model, render_line  # noqa: F401

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# Keep the 2-core CI machine responsive when tests run torch: with pytest-xdist's workers (one
# a core) one thread each, else the workers' threads fight over the cores.
torch.set_num_threads(1 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1
                      else min(2, torch.get_num_threads()))


def pytest_configure(config):
    # A suite started in the background without job control (`nohup bash .ci/run &` from a
    # script, cron) inherits SIGINT ignored, and Python then installs no Ctrl-C handler: the
    # tests that send themselves a Ctrl-C saw nothing arrive. They test hwr's handling of a
    # Ctrl-C, which a user's terminal always delivers.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _sendable(value):
    """`value` (a report as plain data) with every string as strict UTF-8 can carry it: a
    surrogate (an undecodable file name's byte, as hwr's messages keep it) written as its escape."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_sendable(key): _sendable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_sendable(item) for item in value)
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_report_to_serializable(config, report):
    """Reports that pytest-xdist's workers can send: execnet encodes every string as strict
    UTF-8, and a test whose captured log, skip reason or failure named a non-UTF-8 file name
    (café in Latin-1, kept as '\\udce9') ended the whole run in an INTERNALERROR. The report's
    structure is kept: a failure still shows its message in the summary."""
    outcome = yield
    data = outcome.get_result()
    if data is not None:
        outcome.force_result(_sendable(data))


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.slow` tests first: pytest-xdist's workers then share out the short ones at
    the end, not wait on a minute-long test begun last (the browser's teach loop, 75 s). And
    `@pytest.mark.gpu` tests need CUDA: without a device they are skipped, and say so."""
    items.sort(key=lambda item: "slow" not in item.keywords)  # stable: the rest keep their order
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def line_image():
    return render_line


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    """A folder of line images with .gt.txt beside each (kraken/Calamari convention)."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    for i, text in enumerate(LINE_TEXTS):
        Image.fromarray(render_line(text)).save(folder / f"line{i:03d}.png")
        (folder / f"line{i:03d}.gt.txt").write_text(text + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory) -> Path:
    return make_untrained_model(tmp_path_factory.mktemp("model") / "tiny")
