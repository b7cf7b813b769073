"""hwr.errors: the helper that names a few of many bad items in a message."""
from hwr.errors import name_some


def test_name_some_names_the_first_few_and_counts_the_rest():
    assert name_some(["a", "b"], 3) == "a; b"
    assert name_some(["a", "b", "c", "d", "e"], 3) == "a; b; c; and 2 more"
    assert name_some((n for n in range(4)), 2, sep=", ") == "0, 1, and 2 more"
