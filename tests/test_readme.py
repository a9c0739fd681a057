"""The README's flag tables are made from the programs' own parsers, so `--help` and the README can't drift.

After adding or changing a flag, regenerate them with: python tests/test_readme.py
"""

import argparse
import re
from pathlib import Path

from defect_tf.apps import evaluate, predict, train, web

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PROGRAMS = {"train.py": train, "inference.py": predict, "evaluate.py": evaluate, "app.py": web}
# The marker line, then any lines but the end marker (the table), then the end marker.
TABLE = re.compile(r"(<!-- flags of (\S+): made by tests/test_readme\.py -->)\n(?:(?!<!-- end of flags -->).*\n)*"
                   r"(<!-- end of flags -->)")


def flag_table(parser: argparse.ArgumentParser) -> str:
    """One markdown row per flag: the flag (with its value's name), its default, and its help text."""
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flag = action.option_strings[-1] + (f" {action.metavar}" if action.metavar else "")
        default = "" if action.default is None or isinstance(action.default, bool) else f"`{action.default}`"
        meaning = (action.help or "").replace("|", "\\|")
        if action.choices and not all(str(choice) in meaning for choice in action.choices):
            meaning += f" (one of: {', '.join(map(str, action.choices))})"
        rows.append(f"| `{flag}` | {default} | {meaning} |")
    return "\n".join(rows)


def with_tables(text: str) -> str:
    return TABLE.sub(lambda m: f"{m.group(1)}\n{flag_table(PROGRAMS[m.group(2)].build_parser())}\n{m.group(3)}", text)


def test_the_readme_has_each_programs_flag_table_as_its_parser_makes_it():
    text = README.read_text(encoding="utf-8")
    assert sorted(m.group(2) for m in TABLE.finditer(text)) == sorted(PROGRAMS)
    assert text == with_tables(text), "a flag changed: run python tests/test_readme.py to regenerate the tables"


def test_the_readme_stays_short_and_for_users():
    assert len(README.read_text(encoding="utf-8").encode()) < 15_000


if __name__ == "__main__":
    README.write_text(with_tables(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the flag tables in {README}")
