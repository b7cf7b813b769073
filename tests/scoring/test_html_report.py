import re
from html.parser import HTMLParser

import numpy as np

from hwr.scoring.evaluate import score_texts
from hwr.scoring.report.analysis import analyze
from hwr.scoring.report.bias_variance import SplitScore, diagnose
from hwr.scoring.report.bootstrap import Interval
from hwr.scoring.report.compare import compare_reports
from hwr.scoring.report.html import char_diff_html, line_image_data_uri, render_html, write_html

from helpers import render_line

REFS = ["the cat sat", "a big dog", "hello world", "read me now", "one two three", "we go home"]
HYPS = ["the cot sat", "a bg dog", "hello world", "reed me now!", "", "we go home"]


class _TagCheck(HTMLParser):
    """Collects every URL-bearing attribute and checks tags are balanced."""

    VOID = {"meta", "img", "br", "line", "rect", "link"}

    def __init__(self):
        super().__init__()
        self.urls, self.stack, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href", "action")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href", "action")]

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _report():
    ids = [f"l{i}" for i in range(len(REFS))]
    report = score_texts(ids, REFS, HYPS, subsets=["w1", "w2"] * 3)
    images = {i: render_line(t, size=20) for i, t in zip(ids, REFS)}
    return report, analyze(report, resamples=100), images


def test_report_is_self_contained_and_well_formed(tmp_path):
    report, analysis, images = _report()
    diagnosis = diagnose([SplitScore("train", 0.01, Interval(0.0, 0.02), 10),
                          SplitScore("dev", report.cer, analysis.cer_ci, report.lines)])
    comparison = compare_reports(report, report, "A", "B", resamples=50)
    html = render_html(report, analysis, "model-x", "tiny", images, worst_n=4, diagnosis=diagnosis,
                       comparison=comparison, decoding="beam search (char mode, lm.arpa, LM weight 1.5, beam 16)")
    check = _TagCheck()
    check.feed(html)
    assert not check.errors and not check.stack
    assert check.urls and all(u.startswith("data:image/") for u in check.urls)  # only inline images
    text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may hold "//"
    assert not re.search(r"https?:|ftp:|//[a-z0-9]|url\(|@import", text, re.IGNORECASE)
    assert html.count("<img") == 4 and html.count("<svg") == 3
    assert "<td>decoding</td><td>beam search (char mode, lm.arpa, LM weight 1.5, beam 16)</td>" in html
    for heading in ("Summary", "Bias and variance", "Model comparison", "CER by subset", "CER by line length",
                    "Top character confusions", "Most frequent word errors", "The 4 worst lines"):
        assert heading in html
    write_html(tmp_path / "r.html", html)
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == html


def test_report_escapes_text_and_survives_missing_images():
    report = score_texts(["<x>"], ["a<b>&c"], ["a<b>&d"])
    html = render_html(report, analyze(report, resamples=20), images={"<x>": "/no/such/image.png"})
    assert "a&lt;b&gt;&amp;c" in html and "a<b>&c" not in html
    assert "(no image)" in html


def test_char_diff_marks_edits():
    diff = char_diff_html("cat sat", "cot st!")
    assert '<span class="sub" title="a → o"><del>a</del><ins>o</ins></span>' in diff
    assert "<del>a</del>" in diff and "<ins>!</ins>" in diff
    assert char_diff_html("a b", "ab") == "a<del>␣</del>b"  # a lost space is visible


def test_gallery_images_are_small_inline_jpegs():
    uri = line_image_data_uri(np.full((300, 3000), 255, np.uint8))
    assert uri.startswith("data:image/jpeg;base64,")
    assert line_image_data_uri("/no/such/file.png") is None


def test_empty_evaluation_still_renders():
    report = score_texts([], [], [])
    html = render_html(report, analyze(report, resamples=10))
    assert "The 0 worst lines" in html and "<svg" in html  # histograms render, the heat map is left out


def test_a_rate_with_empty_references_is_undefined_as_the_terminal_says():
    report = score_texts(["a", "b"], ["", ""], ["abc", "de"])
    html = render_html(report, analyze(report, resamples=10))
    summary = html[html.index("<h2>Summary</h2>"):].split("<h2>")[1]
    assert "undefined: the references hold no characters (5 characters inserted)" in summary
    assert "100.00%" not in summary  # the tables below show their 0 characters beside the rate
    defined = render_html(*_report()[:2])
    assert "undefined" not in defined and re.search(r"\d+\.\d\d%  \[", defined)
