"""Bibliography labels in the same author-year form as the citations in the text ("Du and Mordatch, 2019"),
instead of the numbers of pybtex's plain style: a label style and a formatting style that uses it, registered as
``author_year_book`` (``bibtex_default_style`` in ``_config.yml``)."""
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return " ".join(person.last_names).replace("{", "").replace("}", "")


def _label(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2
           else f"{names[0]} et al." if names else entry.fields.get("title", "Anonymous"))
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [_label(e) for e in entries]
        count, seen = Counter(labels), Counter()
        for label in labels:               # two works of one author and year: 2019a, 2019b
            if count[label] > 1:
                seen[label] += 1
                label = f"{label}{'abcdefghij'[seen[label] - 1]}"
            yield label


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabels


def setup(app):
    register_plugin("pybtex.style.labels", "author_year_book", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "author_year_book", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
