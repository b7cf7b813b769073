"""JSON: the page, its lines (polygon, baseline, bbox, text, confidence), word boxes, and its
regions (ids of their lines) in reading order."""
from __future__ import annotations

import json

from hwr import __version__
from hwr.documents.writers.common import line_confidence, page_regions, words_with_polygons
from hwr.records import Page

CREATOR = f"hwr {__version__}"


def page_dict(page: Page) -> dict:
    lines = []
    for line in page.lines:
        entry = {"id": line.id, "text": line.read_text, "confidence": line_confidence(line),
                 "polygon": [list(map(int, p)) for p in line.polygon],
                 "baseline": [list(map(int, p)) for p in line.baseline], "bbox": list(map(int, line.bbox))}
        rec = line.recognition
        if rec is not None and rec.char_confidences:
            entry["char_confidences"] = [round(float(c), 4) for c in rec.char_confidences]
        words = words_with_polygons(line, page.orientation)
        if words:
            entry["words"] = [{"text": w.text, "confidence": round(float(w.confidence), 4),
                               "polygon": [list(p) for p in polygon]} for w, polygon in words]
        lines.append(entry)
    regions = [{"id": rid, "lines": [line.id for line in members]} for rid, members in page_regions(page)]
    # The creator first: a JSON file at an output path that does not start with it is someone
    # else's (OWN_MARKS). hwr's first key had been "id", as in `hwr synth --pages`' ground truth
    # or any json.dump of a record whose first key is an id, which a transcription replaced.
    return {"creator": CREATOR, "id": page.id, "source": page.source, "width": page.width, "height": page.height,
            "orientation": page.orientation, "lines": lines, "regions": regions}


def write(page: Page) -> str:
    return json.dumps(page_dict(page), ensure_ascii=False, indent=1) + "\n"
