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
