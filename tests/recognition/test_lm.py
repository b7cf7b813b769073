import math
from collections import Counter

import pytest

from hwr.recognition.lm import UNK, build_lm, discounts, estimate


def p(model, word, context=()):
    return 10 ** model.logprob(word, context)


def test_discounts_match_chen_goodman():
    # n1=4, n2=2, n3=1, n4=1: Y = 4/(4+2*2) = 0.5; D1 = 1-2Y*2/4 = 0.5;
    # D2 = 2-3Y*1/2 = 1.25; D3+ = 3-4Y*1/1 = 1.0
    counts = Counter({"a": 1, "b": 1, "c": 1, "d": 1, "e": 2, "f": 2, "g": 3, "h": 4, "i": 9})
    assert discounts(counts) == pytest.approx((0.5, 1.25, 1.0))


def test_bigram_probabilities_by_hand():
    # "<s> a b </s>" x2, "<s> a </s>". Bigram counts: <s> a 3, a b 2, b </s> 2, a </s> 1
    # -> n1=1, n2=2, n3=1: Y=0.2, D1=0.2, D2=1.7, D3+=3.
    # Unigram continuation counts: a 1 (<s>), b 1 (a), </s> 2 (a, b) -> D1=0.5, D2=2,
    # gamma = (0.5+0.5+2)/4 = 0.75 spread over 4 words (a, b, </s>, <unk>): 0.1875 each.
    m = estimate([["a", "b"], ["a", "b"], ["a"]], order=2)
    assert p(m, "a") == pytest.approx(0.5 / 4 + 0.1875)
    assert p(m, "</s>") == pytest.approx(0.1875)
    assert p(m, UNK) == pytest.approx(0.1875)
    gamma_a = (1.7 + 0.2) / 3
    assert p(m, "b", ["a"]) == pytest.approx((2 - 1.7) / 3 + gamma_a * 0.3125)
    assert p(m, "</s>", ["a"]) == pytest.approx((1 - 0.2) / 3 + gamma_a * 0.1875)
    # unseen after "a": back off with weight gamma(a)
    assert p(m, "a", ["a"]) == pytest.approx(gamma_a * 0.3125)


@pytest.mark.parametrize("min_counts", [(1,), (1, 2, 2)])
def test_every_context_sums_to_one(min_counts):
    sents = [s.split() for s in ["a b c", "a b", "b c a", "c a b c", "a a b", "a b c"]]
    m = estimate(sents, 3, min_counts)
    vocab = [w for w in m.vocabulary() if w != "<s>"]
    for ctx in [(), ("a",), ("<s>",), ("a", "b"), ("b", "c"), ("x", "y")]:
        assert sum(p(m, w, ctx) for w in vocab) == pytest.approx(1.0, abs=1e-9)


def test_pruning_thresholds_must_not_decrease():
    with pytest.raises(ValueError):
        estimate([["a", "b"]], 3, (1, 3, 2))


def test_arpa_file_loads_in_kenlm_with_the_same_scores(tmp_path):
    kenlm = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import create_word_dict

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat.\nthe dog sat!\na cat ran\n", encoding="utf-8")
    model = build_lm([corpus], tmp_path / "lm.arpa", order=3, unit="word")
    words = [w for w in model.vocabulary() if not w.startswith("<")]
    word_dict = create_word_dict({w: [[w]] for w in words + [UNK]})
    lm = kenlm.KenLM(str(tmp_path / "lm.arpa"), word_dict)
    state = lm.start(False)
    state, first = lm.score(state, word_dict.get_index("the"))
    state, second = lm.score(state, word_dict.get_index("cat"))
    # KenLM reports log10 scores, as the ARPA file stores them.
    assert first == pytest.approx(model.logprob("the", ["<s>"]), abs=1e-5)
    assert second == pytest.approx(model.logprob("cat", ["<s>", "the"]), abs=1e-5)
    assert "." in words and "!" in words  # punctuation is its own word


def test_char_unit_marks_spaces():
    m = estimate([list("ab|c")], 2)
    assert "|" in m.vocabulary()
    assert math.isfinite(m.logprob("c", ["|"]))


@pytest.mark.parametrize(("settings", "message"), [
    ({"order": 7}, "--order must be from 2 to 6 .* got 7"), ({"order": 1}, "--order must be from 2 to 6 .* got 1"),
    ({"order": 0}, "--order must be from 2 to 6"),
])
def test_lm_build_refuses_orders_the_decoders_kenlm_cannot_load(settings, message):
    from hwr.errors import ConfigError
    from hwr.recognition.lm import LMBuildConfig

    with pytest.raises(ConfigError, match=message):
        LMBuildConfig(out="lm.arpa", **settings)


@pytest.mark.parametrize(("min_counts", "message"), [
    ("0", "each cut-off must be at least 1"), ("1,-1", "each cut-off must be at least 1"),
    ("1,2,3", "3 cut-offs for an order-2 LM"), ("1,,2", "expected comma-separated integers"),
    ("5,5", "the first cut-off .* must be 1"),  # every unigram was kept anyway
])
def test_lm_build_refuses_cut_offs_that_mean_nothing(min_counts, message):
    from hwr.errors import ConfigError
    from hwr.recognition.lm import LMBuildConfig

    with pytest.raises(ConfigError, match=message):
        LMBuildConfig(out="lm.arpa", order=2, min_counts=min_counts).cutoffs()


def test_arpa_unigrams_reads_the_vocabulary_and_says_none_for_other_files(tmp_path):
    from hwr.recognition.lm import arpa_unigrams

    build_lm_file = tmp_path / "corpus.txt"
    build_lm_file.write_text("ab ba\n", encoding="utf-8")
    build_lm([build_lm_file], tmp_path / "lm.arpa.gz", order=2)
    assert sorted(arpa_unigrams(tmp_path / "lm.arpa.gz")) == sorted(["</s>", "<s>", "<unk>", "a", "b", "|"])
    (tmp_path / "other").write_bytes(b"\x00\x01binary")
    assert arpa_unigrams(tmp_path / "other") is None


def test_lm_build_says_what_it_drops_and_keeps_what_the_named_model_writes(untrained_model, tmp_path, caplog):
    """`café` became `caf` in every n-gram without a word; --model names the reading model."""
    import json
    import shutil

    from hwr.cli import main

    corpus = tmp_path / "fr.txt"
    corpus.write_text("un café au lait\nla crème brûlée\n" * 5, encoding="utf-8")
    assert main(["lm", "build", str(corpus), "--out", str(tmp_path / "ascii.arpa"), "--order", "3"]) == 0
    assert "characters the model cannot write were left out" in caplog.text and "'é' x10" in caplog.text
    assert "é" not in (tmp_path / "ascii.arpa").read_text(encoding="utf-8")
    french = tmp_path / "french-model"
    shutil.copytree(untrained_model, french)
    config = json.loads((french / "config.json").read_text(encoding="utf-8"))
    config["charset"] = config["charset"] + ["é", "è", "û"]
    (french / "config.json").write_text(json.dumps(config), encoding="utf-8")
    caplog.clear()
    assert main(["lm", "build", str(corpus), "--out", str(tmp_path / "fr.arpa"), "--order", "3",
                 "--model", str(french)]) == 0
    assert "left out" not in caplog.text and "é" in (tmp_path / "fr.arpa").read_text(encoding="utf-8")
    # A decomposed "é" (e + U+0301, as macOS writes file text) is the "é" the model writes.
    import unicodedata

    corpus.write_text(unicodedata.normalize("NFD", "un café\n") * 5, encoding="utf-8")
    caplog.clear()
    assert main(["lm", "build", str(corpus), "--out", str(tmp_path / "nfd.arpa"), "--order", "3",
                 "--model", str(french)]) == 0
    assert "left out" not in caplog.text and "é" in (tmp_path / "nfd.arpa").read_text(encoding="utf-8")


def test_a_corpus_of_more_tokens_than_codes_is_a_clear_error(monkeypatch):
    import hwr.recognition.lm as lm
    from hwr.errors import ConfigError

    monkeypatch.setattr(lm, "_CODE_BASE", lm.sys.maxunicode - 2)  # room for 3 tokens: <s>, </s>, one word
    with pytest.raises(ConfigError, match="more than 3 distinct tokens"):
        lm.count_ngrams([["one", "two"]], 2)
