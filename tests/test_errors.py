"""hwr.errors: the helpers that word messages (a few of many bad items named; counts with their nouns)."""
from hwr.errors import counted, name_some


def test_name_some_names_the_first_few_and_counts_the_rest():
    assert name_some(["a", "b"], 3) == "a; b"
    assert name_some(["a", "b", "c", "d", "e"], 3) == "a; b; c; and 2 more"
    assert name_some((n for n in range(4)), 2, sep=", ") == "0, 1, and 2 more"


def test_counted_puts_the_noun_in_the_number_of_the_count():
    assert counted(1, "line") == "1 line" and counted(0, "line") == "0 lines" and counted(3, "page") == "3 pages"
    assert counted(2, "unusable entry", "unusable entries") == "2 unusable entries"
