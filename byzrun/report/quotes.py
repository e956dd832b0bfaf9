"""The READMEs' numbers about results, checked against byzrun.report.claims (and their summary tables
written from the runs).

A README marks what a passage quotes with an HTML comment right after it, invisible when rendered:

    Krum selected a Byzantine row at 8-23% of evaluations. <!-- quotes: t1.krum_code.capture_pct_min ... -->

The passage is the text since the previous marker, blank line or list item. Each claim named must appear
in its passage as its text (a whole number: `8` does not match inside `18` or `8.2`), and every number of
the passage that looks like a result (a decimal, a percentage, a signed difference, a count in `N of M`)
must be one of the named claims' texts or a setting (after `=`, `lr`, `z`, a Greek letter ...).
`<!-- quotes: setup -->` marks a passage whose numbers describe the set-up (settings, the differential
test), not results. A result-looking number outside every marked passage is an error; in a file with
`<!-- results -->` ... `<!-- end of results -->` regions (README.md), only inside them. A summary table is
a generated block between `<!-- summary table: table1 -->` and `<!-- end of summary table -->`.

    python -m byzrun.report.quotes                 check every file of CHECKED; exit 1 on a wrong number
    python -m byzrun.report.quotes README.md       check these files only
    python -m byzrun.report.quotes --write         rewrite the summary tables from the runs, then check
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from byzrun.report import bench
from byzrun.report.claims import Claim, claims, section
from byzrun.report.render import MARKDOWN, format_diff, format_stat, format_value

MARKER = re.compile(r"<!--\s*quotes:\s*(.*?)\s*-->", re.S)
TABLE_START = re.compile(r"<!-- summary table: (\w+) -->\n")
TABLE_END = "<!-- end of summary table -->"
# a result-looking number: signed or not, a decimal, a percentage, or the first of "N of M" / "N of the M"
RESULT = re.compile(
    r"(?<![\w.])[-+−]?\d+\.\d+%?(?![\w.]*\d)"
    r"|(?<![\w.])\d+(?:\.\d+)?%"
    r"|(?<![\w.])\d+(?= of (?:the |its )?\d)"
    r"|(?<=of )(?:the |its )?\d+(?![\w.])"
)
#: a number right after one of these is a setting or an index, not a result
SETTING_BEFORE = re.compile(
    r"(?:[=∈≈{·]|\blr|\bz|\bbeta|[εαβσ]|\bseeds?|\bround|\bTable|\bissue|\bbatch(?: of)?)\s*$"
)
CODE_SPAN = re.compile(r"`[^`]*`|\]\([^)]*\)")


#: the markdown files whose numbers are checked (relative to the repository; globs allowed): add a new
#: page that quotes the runs here
CHECKED = (
    "README.md",
    "docs/*.md",
    "results/paper/README.md",
    "results/evidence/README.md",
    "results/no_avx512/README.md",
)


def checked_files(root: Path) -> list[Path]:
    """The files of CHECKED that exist under root, in order."""
    return [path for pattern in CHECKED for path in sorted(root.glob(pattern))]


#: the marker of a passage whose numbers describe the set-up, not the runs' results
SETUP = "setup"


def passages(text: str) -> list[tuple[str, list[str]]]:
    """(passage, claim keys) for every marker: the text since the previous marker, blank line or list
    item, without code spans and link targets."""
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*- )", text):
        start = 0
        for match in MARKER.finditer(block):
            out.append((CODE_SPAN.sub(" ", block[start : match.start()]), match.group(1).split()))
            start = match.end()
    return out


def unmarked(text: str) -> list[str]:
    """Prose outside markers' passages, code blocks, tables and generated blocks; in a file with
    `<!-- results -->` ... `<!-- end of results -->` regions, only the prose inside them."""
    regions = re.findall(r"<!-- results -->(.*?)<!-- end of results -->", text, flags=re.S)
    text = "\n\n".join(regions) if regions else text
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(TABLE_START.pattern + r".*?" + re.escape(TABLE_END), " ", text, flags=re.S)
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*- )", text):
        tail = MARKER.split(block)[-1] if MARKER.search(block) else block
        lines = [line for line in tail.splitlines() if not line.lstrip().startswith(("|", "#"))]
        out.append(CODE_SPAN.sub(" ", "\n".join(lines)))
    return out


def found(claim_text: str, passage: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(claim_text)}(?!\d|\.\d)", passage.replace("−", "-")) is not None


def results_in(passage: str) -> list[str]:
    """The result-looking numbers of a passage (settings and indices left out)."""
    numbers = []
    for match in RESULT.finditer(passage):
        if SETTING_BEFORE.search(passage[: match.start()]):
            continue
        token = re.sub(r"^(the |its )", "", match.group()).rstrip("%").replace("−", "-")
        numbers.append(token)
    return numbers


def check_text(text: str, known: dict[str, Claim], where: str) -> list[str]:
    """Every problem of one README's marked passages, as lines."""
    problems = []
    for passage, keys in passages(text):
        head = " ".join(passage.split())[:70]
        if keys == [SETUP]:
            continue
        texts = set()
        for key in keys:
            claim = known.get(key)
            if claim is None:
                problems.append(f"{where}: unknown claim {key} ({head}...)")
                continue
            texts |= {claim.text, claim.text.lstrip("+")}
            if not found(claim.text, passage):
                problems.append(f"{where}: {key} is {claim.text} (from the runs), not in: {head}...")
        for number in results_in(passage):
            if number not in texts and number.lstrip("+-") not in texts:
                problems.append(f"{where}: {number} is not a claim of its marker ({head}...)")
    for prose in unmarked(text):
        for number in results_in(prose):
            problems.append(f"{where}: {number} has no marker ({' '.join(prose.split())[:70]}...)")
    return problems


# ---------------------------------------------------------------- summary tables


def code_stat(line) -> str:
    runs = line.get("code_runs", 0)
    if not runs or runs != runs:
        return "–"
    return format_stat(line["code_mean"], line["code_std"], runs, 0, MARKDOWN)


def table1(results: Path) -> str:
    frame = section(results / "paper", "table1_mnist").frame
    lines = [
        "| Table 1 (MNIST, test accuracy %) | byzrun, max | byzrun, final | "
        "authors' code, same files (max) | paper | Δ (byzrun − paper) |",
        "|---|---|---|---|---|---|",
    ]
    for line in frame.to_dict("records"):
        cells = [
            line["row"],
            format_stat(line["mean"], line["std"], line["seeds"], line["diverged"], MARKDOWN),
            format_stat(line["final_mean"], line["final_std"], line["final_seeds"], 0, MARKDOWN),
            code_stat(line),
            format_value(line["paper"], MARKDOWN),
            format_diff(line["diff"], MARKDOWN),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table2(results: Path) -> str:
    frame = section(results / "paper", "table2_mnist").frame.set_index(["row", "metric"])
    lines = [
        "| Table 2 (MNIST, max %) | benign, byzrun | benign paper | backdoor, test images | backdoor, "
        "attacker's images | backdoor, authors' code (attacker's images) | backdoor paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in dict.fromkeys(frame.index.get_level_values(0)):
        benign = frame.loc[(row, "max_test_acc")]
        stat = lambda m: format_stat(m["mean"], m["std"], m["seeds"], m["diverged"], MARKDOWN)  # noqa: E731
        if (row, "max_backdoor_acc") in frame.index:
            test, own = frame.loc[(row, "max_backdoor_acc")], frame.loc[(row, "max_backdoor_acc_own")]
            backdoor = [stat(test), stat(own), code_stat(own), format_value(own["paper"], MARKDOWN)]
        else:
            backdoor = ["–"] * 4
        cells = [row, stat(benign), format_value(benign["paper"], MARKDOWN), *backdoor]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TABLES = {"table1": table1, "table2": table2, **bench.TABLES}


def with_tables(text: str, results: Path) -> str:
    """The text with every summary table block rewritten from the runs."""

    def render(match: re.Match) -> str:
        return match.group(1) + TABLES[match.group(2)](results) + TABLE_END

    pattern = re.compile(r"(<!-- summary table: (\w+) -->\n).*?" + re.escape(TABLE_END), re.S)
    return pattern.sub(render, text)


def check(paths: list[Path], results: Path) -> list[str]:
    known = claims(results)
    problems = []
    for path in paths:
        text = path.read_text()
        if with_tables(text, results) != text:
            problems.append(f"{path}: a summary table differs from the runs (rewrite it with --write)")
        problems += check_text(text, known, str(path))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m byzrun.report.quotes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("readmes", nargs="*", type=Path, help="default: every file of CHECKED")
    parser.add_argument("--results", type=Path, default=Path("results"), help="default: results")
    parser.add_argument("--write", action="store_true", help="rewrite the summary tables from the runs")
    args = parser.parse_args(argv)
    args.readmes = args.readmes or checked_files(Path("."))
    if args.write:
        for path in args.readmes:
            path.write_text(with_tables(path.read_text(), args.results))
    problems = check(args.readmes, args.results)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
