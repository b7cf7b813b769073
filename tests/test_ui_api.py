"""The web app's named API endpoints, driven with gradio_client against a live local server.

The server runs in this process on a free localhost port with a tiny untrained model (built
here, nothing trained or downloaded); reading real text needs the shipped model and is
skipped, saying so, when it is absent.
"""
from __future__ import annotations

import io
import socket
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from hwr.documents.writers import SUFFIXES
from hwr.recognition.model import Recognizer
from hwr.recognition.settings import DEFAULT_WIDTH_VARIANTS
from hwr.scoring.metrics import cer
from hwr_ui import UIConfig, build_app, close_app, launch_app
from hwr_ui.pages import export_formats

from helpers import free_port, make_untrained_model, render_line

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "data" / "samples"
SHIPPED = REPO / "models" / "hwr-en-small"
# A sanity bound (the shipped model reads this held-out-font line), not an accuracy claim:
# the model card reports accuracy.
SHIPPED_MAX_CER = 0.25


def start_server(model_dir: Path):
    config = UIConfig(model=str(model_dir), port=free_port(), concurrency=2)
    demo = build_app(config)
    return demo, launch_app(demo, config, block=False)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_untrained_model(tmp_path_factory.mktemp("ui") / "tiny")


LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(scope="module")
def outbound():
    """Every non-local host the process resolves or connects to while the app runs."""
    seen: list[str] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOCAL_HOSTS:
            seen.append(str(address[0]))
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL_HOSTS and host is not None:
            seen.append(str(host))
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield seen


@pytest.fixture(scope="module")
def client(tiny_dir, outbound):
    demo, url = start_server(tiny_dir)
    try:
        yield Client(url, verbose=False)
    finally:
        close_app(demo)


def transcribe(client: Client, path: Path, layout: str = "auto"):
    return client.predict(handle_file(str(path)), "tiny", "greedy", layout, api_name="/transcribe")


def test_server_binds_loopback_and_lists_named_endpoints(client):
    assert client.src.startswith("http://127.0.0.1:")
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/transcribe", "/export", "/batch", "/evaluate", "/model_info", "/benchmark"} <= named


def test_transcribe_line_shows_what_the_recognizer_reads(client, tiny_dir):
    line = SAMPLES / "line-02.png"
    outlined, lines_html, text, downloads, page, status = transcribe(client, line)
    # As the app reads by default: doubtful lines read again stretched.
    expected = Recognizer.load(tiny_dir, width_variants=DEFAULT_WIDTH_VARIANTS).recognize([line])[0].text
    assert text == expected
    assert Image.open(outlined).size == Image.open(line).size
    assert 'class="hwr-line"' in lines_html and "1 line(s) read as line" in status
    assert [line["recognition"]["text"] for line in page["lines"]] == [expected]
    assert sorted(Path(p).name for p in downloads) == sorted(f"line-02{SUFFIXES[f]}" for f in export_formats())


def test_a_page_scanned_sideways_is_read_turned_and_says_so(client, tmp_path):
    from hwr.documents.orientation import turned
    from hwr.synth import LineSynthesizer

    page_image = LineSynthesizer(split="val", seed=3).sample_page(0, n_lines=4).image
    path = tmp_path / "sideways.png"
    Image.fromarray(turned(page_image, 270)).save(path)  # reads once turned 90 degrees clockwise
    outlined, _, _, _, page, status = transcribe(client, path, "page")
    assert "page turned 90° clockwise to read" in status and page["orientation"] == 90
    assert Image.open(outlined).size == Image.open(path).size  # the lines drawn on the scan as given


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(),
                    reason=f"no shipped model in {SHIPPED}: reading real text needs a trained model")
def test_shipped_model_reads_a_rendered_line():
    demo, url = start_server(SHIPPED)
    try:
        line = SAMPLES / "line-03.png"
        text = Client(url, verbose=False).predict(handle_file(str(line)), api_name="/transcribe")[2]
    finally:
        close_app(demo)
    truth = (SAMPLES / "line-03.gt.txt").read_text(encoding="utf-8").strip()
    assert cer(truth, text) <= SHIPPED_MAX_CER, (truth, text)


def test_corrections_reach_the_downloads(client):
    *_, page, _ = transcribe(client, SAMPLES / "line-04.png")
    # The page carries its image's digest: Save as training lines checks the pixels by it.
    from hwr.recognition.imaging import load_gray
    from hwr_ui.collection import page_key
    from hwr_ui.pages import IMAGE_KEY

    assert page[IMAGE_KEY] == page_key(load_gray(SAMPLES / "line-04.png"))
    downloads = client.predict(page, "corrected text", api_name="/export")
    txt = next(p for p in downloads if p.endswith(".txt"))
    assert Path(txt).read_text(encoding="utf-8").strip() == "corrected text"
    with pytest.raises(AppError, match="keep one line of text per detected line"):
        client.predict(page, "one\ntwo\nthree", api_name="/export")


def _huge_png_header(tmp_path: Path) -> Path:
    """A valid 1x1 PNG whose header claims 40000x40000 pixels (a decompression bomb's shape)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", 40000, 40000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("name, content, message", [
    ("notes.txt", b"shopping list: milk", "not a readable image"),
    ("empty.png", b"", "not a readable image"),
    ("cut.png", None, "unreadable image|not a readable image"),
])
def test_bad_image_uploads_give_friendly_errors(client, tmp_path, name, content, message):
    if content is None:  # a real PNG cut in half, as an interrupted upload leaves it
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 400), np.uint8)).save(buffer, format="PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AppError, match=message) as info:
        transcribe(client, path)
    assert "Traceback" not in str(info.value) and name in str(info.value)


def test_huge_image_is_refused(client, tmp_path):
    with pytest.raises(AppError, match="(too large|exceeds limit|decompression bomb)"):
        transcribe(client, _huge_png_header(tmp_path))


def test_zip_without_ground_truth_is_explained(client, tmp_path):
    archive = tmp_path / "no-gt.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(SAMPLES / "line-01.png", "lines/line-01.png")
    with pytest.raises(AppError, match="holds no ground truth"):
        client.predict(handle_file(str(archive)), "tiny", "greedy", api_name="/evaluate")
    # ... and the server is still there afterwards.
    assert transcribe(client, SAMPLES / "line-04.png")[5].startswith("1 line(s)")


def test_evaluate_a_zipped_pairs_data_set(client):
    summary, plot, table, csv_path, skipped = client.predict(handle_file(str(SAMPLES / "eval-lines.zip")), "tiny",
                                                             "greedy", api_name="/evaluate")
    assert skipped is None  # nothing skipped: no second file
    assert "CER" in summary and "6 lines" in summary
    assert table.count("<img") == 6
    assert sum(row[2] for row in plot["data"]) == 6  # every line lands in one length bin
    assert len(Path(csv_path).read_text(encoding="utf-8").splitlines()) == 7


def test_batch_reports_each_file_and_zips_outputs(client, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    files = [handle_file(str(SAMPLES / "line-01.png")), handle_file(str(bad)),
             handle_file(str(SAMPLES / "eval-lines.zip"))]
    table, archive, summary = client.predict(files, "tiny", "greedy", "auto", api_name="/batch")
    rows = table["data"]
    assert len(rows) == 1 + 1 + 6 and "7 of 8 images read; 1 failed" in summary
    errors = {row[0]: row[5] for row in rows}
    assert errors["bad.png"].startswith("not a readable image") and not errors["line-01.png"]
    assert "/" not in errors["bad.png"]  # no server-side paths in messages
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert "results.csv" in names
    assert len(names) == 1 + 7 * len(export_formats())


def test_batch_api_survives_bombs_and_broken_tiffs(client, tmp_path):
    import bad_inputs

    files = [handle_file(str(bad_inputs.huge_tiff_header(tmp_path / "bomb.tif"))),
             handle_file(str(SAMPLES / "line-01.png")),
             handle_file(str(bad_inputs.truncated_multipage_tiff(tmp_path / "cut.tif")))]
    table, archive, summary = client.predict(files, "tiny", "greedy", "auto", api_name="/batch")
    errors = {row[0]: row[5] for row in table["data"]}
    # cut.tif: page 1 is read, page 2 does not decode, page 3 lies past the break in its page chain.
    assert "2 of 5 images read; 3 failed" in summary and not errors["line-01.png"] and not errors["cut.tif#p1"]
    assert "too large" in errors["bomb.tif"] and errors["cut.tif#p2"].startswith("not a readable image")
    assert "page chain breaks" in errors["cut.tif#p3"]


def test_a_batch_page_is_corrected_and_saved_as_training_lines(tiny_dir, tmp_path, monkeypatch):
    """Batch results join the training collection the same way a transcription does."""
    monkeypatch.setenv("HWR_USER_DIR", str(tmp_path / "user"))
    Image.fromarray(render_line("saved from a batch")).save(tmp_path / "one.png")
    demo, url = start_server(tiny_dir)
    try:
        batch = Client(url, verbose=False)
        table, _, _ = batch.predict([handle_file(str(tmp_path / "one.png"))], "tiny", "greedy", "line",
                                    api_name="/batch")
        assert table["data"][0][0] == "one.png"
        _, text = batch.predict("one.png", api_name="/batch_page")
        assert text.count("\n") == 0  # one detected line, as read by the (untrained) model
        message = batch.predict("one.png", "saved from a batch", api_name="/save_batch_lines")
        assert "Saved 1 line." in message
        with pytest.raises(AppError, match="not a page of the last batch"):
            batch.predict("other.png", api_name="/batch_page")
    finally:
        close_app(demo)
    [gt] = (tmp_path / "user" / "collection" / "lines").glob("*/*.gt.txt")
    assert gt.read_text(encoding="utf-8") == "saved from a batch\n"


def test_model_tab_endpoints(client):
    card, facts = client.predict("tiny", "greedy", api_name="/model_info")
    assert facts["parameters"] > 0 and facts["device"] in ("cpu", "cuda", "cuda:0") and "crnn" in card
    speed = client.predict("tiny", "greedy", api_name="/benchmark")
    assert speed["one_line_ms_median"] > 0 and speed["batch_lines_per_s"] > 0


def test_concurrent_users_are_queued_not_crashed(client):
    jobs = [client.submit(handle_file(str(SAMPLES / f"line-0{k}.png")), "tiny", "greedy", "line",
                          api_name="/transcribe") for k in range(1, 7)]
    assert all(job.result(timeout=60)[5].startswith("1 line(s)") for job in jobs)


def test_no_outbound_connections(client, outbound):
    # Runs after the others (file order): start-up and every endpoint above have been exercised.
    client.predict(handle_file(str(SAMPLES / "line-01.png")), "tiny", "greedy", "auto", api_name="/transcribe")
    assert outbound == []


def test_cli_ui_flags_default_to_loopback():
    from hwr.cli import build_parser
    from hwr.config_args import build_config

    args = build_parser().parse_args(["ui", "--port", "7999", "--model", "m"])
    config = build_config(UIConfig, args, args.config)
    assert (config.host, config.port, config.share, config.model) == ("127.0.0.1", 7999, False, "m")
    assert build_parser().parse_args(["ui", "--share"]).share is True


def test_cli_ui_beam_options_reach_the_beam_decoders_only(untrained_model, tmp_path):
    """`hwr ui --lm ... --lm-weight ...`: the same decoder flags as transcribe and eval."""
    from hwr.cli import build_parser
    from hwr.config_args import build_config
    from hwr.recognition.decode import decoder_options
    from hwr_ui.models import ModelRegistry

    args = build_parser().parse_args(["ui", "--model", str(untrained_model), "--lm", "none", "--blank-penalty",
                                      "0.5"])
    config = build_config(UIConfig, args, args.config)
    assert decoder_options(config) == {"lm": "none", "blank_penalty": 0.5}
    registry = ModelRegistry(config.model, "cpu", decoder_options(config))
    beam = registry.get(None, "beam-char").decoder
    assert beam.options.blank_penalty == 0.5 and beam.lm_path is None
    assert registry.get(None, "greedy").decoder.name == "greedy"  # greedy takes no beam options
    # Settings of one search only: each decoder takes those it uses. The character search had
    # failed every request of a server started with --word-score.
    args = build_parser().parse_args(["ui", "--model", str(untrained_model), "--word-score", "2"])
    registry = ModelRegistry(args.model, "cpu", decoder_options(build_config(UIConfig, args, args.config)))
    assert registry.get(None, "beam-char").decoder.mode == "char"
    assert registry.get(None, "beam-word").decoder.options.word_score == 2.0


def test_the_server_takes_a_shipped_model_by_name(tmp_path, monkeypatch):
    """`hwr ui --model hwr-en-base` from any folder: the named model is the first choice and
    the others stay in the menu."""
    from hwr_ui.models import discover_models

    monkeypatch.chdir(tmp_path)
    choices = discover_models("hwr-en-base")
    assert list(choices)[0] == "hwr-en-base" and "hwr-en-small" in choices


def test_errors_about_the_users_own_files_reach_the_page_and_bugs_do_not():
    import gradio as gr

    from hwr.errors import ConfigError
    from hwr_ui.app import friendly

    @friendly
    def unusable_lines():  # what adapt raises for the Teach tab about a collection's lines
        raise ConfigError("l003.png: empty transcription (use --skip-bad to leave such lines out)")

    @friendly
    def bug():
        raise KeyError("internal")

    @friendly
    def full_disk():  # what saving a batch's outputs or a collection's lines meets on a full disk
        import errno

        raise OSError(errno.ENOSPC, "No space left on device", "/data/hwr/out/page.xml")

    with pytest.raises(gr.Error, match=r"cannot write /data/hwr/out/page\.xml: the disk is full"):
        full_disk()

    with pytest.raises(gr.Error, match="l003.png: empty transcription"):
        unusable_lines()
    with pytest.raises(gr.Error, match="something went wrong on the server"):
        bug()

    @friendly
    def quoted():  # the message is shown as HTML, and API clients read it as text
        raise ConfigError("minutes must be a number above 0, got 'soon' <b>")

    with pytest.raises(gr.Error) as raised:
        quoted()
    assert raised.value.message == "minutes must be a number above 0, got 'soon' &lt;b&gt;"


def test_the_reading_jobs_share_one_concurrency_limit(tiny_dir):
    """Each event had its own group: --concurrency 2 let two of each kind run at once."""
    from hwr_ui.app import WORK_GROUP

    demo = build_app(UIConfig(model=str(tiny_dir), port=free_port(), concurrency=2))
    try:
        groups = {fn.api_name: fn.concurrency_id for fn in demo.fns.values()}
        assert {groups[name] for name in ("transcribe", "batch", "evaluate", "benchmark")} == {WORK_GROUP}
    finally:
        demo.hwr_context.work.close()


def test_a_pdf_dropped_on_the_transcribe_tab_is_read_from_its_first_page(tmp_path):
    """It had been refused as a damaged image (a probe helper); the Batch tab reads every page."""
    from PIL import Image

    from hwr_ui.pages import first_page

    pages = [Image.fromarray(render_line(text)).convert("RGB") for text in ("first page", "second page")]
    pages[0].save(tmp_path / "scan.pdf", save_all=True, append_images=pages[1:], resolution=150)
    gray, more = first_page(str(tmp_path / "scan.pdf"))
    assert more == 2 and gray.ndim == 2 and gray.min() < 100
    pages[0].save(tmp_path / "one.pdf", resolution=150)
    assert first_page(str(tmp_path / "one.pdf"))[1] == 0
    Image.fromarray(render_line("a line")).save(tmp_path / "line.png")
    assert first_page(str(tmp_path / "line.png"))[1] == 0
