"""Screenshot the web app's Transcribe tab for the README (docs/ui-transcribe.png).

    python bench/ui_screenshot.py [--model models/hwr-en-small] [--image data/samples/page-01.jpg]

Starts the app on a free localhost port, opens it in Debian's Chromium through Playwright,
transcribes the image and saves the page. Rerun it whenever the shipped model or the UI changes.
"""
from __future__ import annotations

import argparse
import socket
from pathlib import Path

from playwright.sync_api import sync_playwright

from hwr_ui import UIConfig, build_app, close_app, launch_app

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(url: str, image: Path, out: Path, profile: Path, width: int, height: int) -> None:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": width, "height": height}, device_scale_factor=1)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(url)
            page.locator("#hwr-input input[type=file]").set_input_files(str(image))
            page.locator("#hwr-input img").first.wait_for()
            page.locator("#hwr-transcribe").click()
            page.locator("#hwr-status").get_by_text("line(s) read").wait_for(timeout=120_000)
            page.wait_for_timeout(500)  # let the outlined image finish fading in
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            context.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the shipped model)")
    parser.add_argument("--image", type=Path, default=REPO / "data" / "samples" / "page-01.jpg")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ui-transcribe.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args(argv)
    config = UIConfig(model=args.model, port=free_port())
    demo = build_app(config)
    try:
        url = launch_app(demo, config, block=False)
        screenshot(url, args.image, args.out, demo.hwr_context.work.new("chromium-profile"), args.width, args.height)
    finally:
        close_app(demo)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
