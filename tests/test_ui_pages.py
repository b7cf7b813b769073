"""ui/pages.py: the page's round trip through the browser's JSON.

Not tested here: reading pages (tests/documents/test_pipeline.py) and writing them (tests/documents/)."""
from __future__ import annotations

import pytest

from hwr_ui.pages import page_from_dict
from hwr_ui.uploads import UploadError


@pytest.mark.parametrize("data", [["x"], "abc", 3, {"id": "p", "width": 9, "height": 9, "lines": [[1, 2]]}])
def test_page_json_of_another_shape_is_a_readable_error(data):
    # A list, a string or a list for a line used to raise AttributeError: "something went wrong".
    with pytest.raises(UploadError, match="not a page result from the transcribe step"):
        page_from_dict(data)


@pytest.mark.parametrize("page_id, stem", [("../../outside", "outside"), ("/abs/models/x/config", "config"),
                                           ("box\\scan 1", "scan 1"), ("..", "page"),
                                           ("\x1b[31m.hidden", "[31m.hidden"),
                                           ("y" * 251, "y" * 204 + "~fbbf1d465b")])  # fits ".alto.xml" on the disk
def test_downloads_stay_in_their_folder_whatever_id_the_browser_sends(tmp_path, page_id, stem):
    """The page JSON comes back from the browser: its id had been the downloads' path ("/export"
    wrote anywhere on the server, a model's config.json included)."""
    from hwr.records import Page
    from hwr_ui.pages import export_page

    folder = tmp_path / "export"
    files = export_page(Page(page_id, "", 10, 10, []), folder, page_id, ["txt", "json", "alto"])
    assert [f.parent for f in files] == [folder] * 3 and files[0].name == f"{stem}.txt"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(f.name for f in files)
