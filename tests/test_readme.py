"""Every program's flags, in docs/flags.md, are made from the programs' own parsers, so `--help` and the docs can't
drift; the README links there and stays short.

After adding or changing a flag, regenerate the page with: python tests/test_readme.py
"""

import argparse
from pathlib import Path

from defect_tf.apps import evaluate, export, predict, prepare, serve, train, train_anomaly, web

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FLAGS_PAGE = ROOT / "docs" / "flags.md"
PROGRAMS = {"train.py": train, "prepare.py": prepare, "train.py --task anomaly": train_anomaly, "inference.py": predict, "evaluate.py": evaluate, "export.py": export, "app.py": web,
            "serve.py": serve}


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


def flags_page() -> str:
    sections = [f"## {name}\n\n{flag_table(module.build_parser())}\n" for name, module in PROGRAMS.items()]
    return ("# Every flag of every program\n\nMade by `tests/test_readme.py` from the programs' own parsers (what "
            "`--help` prints); `defect-tf COMMAND` takes the same flags.\n\n" + "\n".join(sections))


def test_the_flags_page_is_what_the_parsers_make():
    assert FLAGS_PAGE.read_text(encoding="utf-8") == flags_page(), \
        "a flag changed: run python tests/test_readme.py to regenerate docs/flags.md"


def test_the_readme_names_every_program_and_links_the_flags_page():
    text = README.read_text(encoding="utf-8")
    assert all(f"python {name}" in text for name in PROGRAMS) and "docs/flags.md" in text


def test_the_readme_stays_short_and_for_users():
    assert len(README.read_text(encoding="utf-8").encode()) < 15_000


if __name__ == "__main__":
    FLAGS_PAGE.write_text(flags_page(), encoding="utf-8")
    print(f"rewrote {FLAGS_PAGE}")
