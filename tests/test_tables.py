"""The Markdown tables the chapters print: numbers, n/a, and pipes that cannot split a cell."""
from ebmlib.notebook.tables import markdown_table


def test_floats_nan_and_escaped_pipes():
    text = markdown_table(["KL(q || p)", "n"], [[0.12345, float("nan")], ["a|b", 3]], digits=2)
    lines = text.splitlines()
    assert lines[0] == "| KL(q \\|\\| p) | n |" and lines[1] == "|---|---|"
    assert lines[2] == "| 0.12 | n/a |" and lines[3] == "| a\\|b | 3 |"
    assert all(line.replace("\\|", "").count("|") == 3 for line in lines)   # two cells on every line
