"""The documentation pages hold together: links resolve, the front page's headline
numbers are the faces study's, and machine-dated measurements stay on one page."""

import glob
import os
import re

import pytest

from helpers import REPO

PAGES = ["README.md", *sorted(glob.glob("docs/*.md", root_dir=REPO)), "benchmarks/README.md",
         "reproductions/README.md", *sorted(glob.glob("reproductions/*/README.md", root_dir=REPO))]
# [text](target) and ![alt](target), outside code spans.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def read(path: str) -> str:
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation other than
    '-' and '_' dropped, spaces as '-'."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(anchor)
    return anchors


def test_anchor_rule_by_hand():
    assert heading_anchors("# Irregular holes\n## The machines\n### `inpaint-app` (API)\n") == {
        "irregular-holes", "the-machines", "inpaint-app-api"}


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", read(page), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(os.path.join(REPO, resolved)), f"{page}: no {resolved} ({target})"
        if anchor:
            assert resolved.endswith(".md"), f"{page}: an anchor into {resolved}"
            assert anchor in heading_anchors(read(resolved)), f"{page}: no #{anchor} in {resolved}"


def test_every_docs_page_is_linked_from_the_front_page():
    readme = read("README.md")
    for page in glob.glob("docs/*.md", root_dir=REPO):
        assert f"]({page})" in readme, page
    assert "](benchmarks/README.md)" in readme


def test_the_front_page_is_short_and_starts_with_what_a_newcomer_needs():
    lines = read("README.md").splitlines()
    assert len(lines) <= 260, len(lines)
    first_screens = "\n".join(lines[:80])
    assert "python3 run.py demo" in first_screens and "python3 run.py test" in first_screens
    assert "![" in first_screens  # one picture of what a trained model does
    assert "reproductions/context_encoder/train.py" in "\n".join(lines[:100])


def study_table(text: str, mask_set: str) -> dict[str, list[str]]:
    """Rows of the faces-study block's table for one mask set: method -> cells."""
    block = text.split("<!-- results:faces_study:start -->")[1].split(
        "<!-- results:faces_study:end -->")[0]
    table = block.split(f"**{mask_set}** masks")[1].split("\n\n", 2)[1]
    header, _, *rows = table.splitlines()
    names = [cell.strip() for cell in header.strip("|").split("|")]
    cells = {}
    for row in rows:
        values = [cell.strip() for cell in row.strip("|").split("|")]
        cells[values[0]] = dict(zip(names, values))
    return cells


def test_the_headline_numbers_are_the_faces_studys():
    readme, study = read("README.md"), read("benchmarks/README.md")
    block = readme.split("<!-- headline:faces_study:start -->")[1].split(
        "<!-- headline:faces_study:end -->")[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in block.strip().splitlines()[2:]]
    assert len(rows) == 4
    for _, holes, method, psnr, l1_hole, baseline, base_psnr, base_l1 in rows:
        mask_set = re.search(r"\(`(\w+)`\)", holes).group(1)
        table = study_table(study, mask_set)
        assert (table[method]["PSNR (dB)"], table[method]["L1 hole"]) == (psnr, l1_hole), method
        assert (table[baseline]["PSNR (dB)"], table[baseline]["L1 hole"]) == (base_psnr, base_l1)
        # The best classical fill on those holes, and the paper beats it on both.
        classical = [table[name] for name in ("telea", "ns", "biharmonic")]
        assert float(base_psnr) == max(float(row["PSNR (dB)"]) for row in classical)
        assert float(psnr) > float(base_psnr) and float(l1_hole) < float(base_l1)


def test_dated_measurements_stay_on_the_performance_page():
    for page in PAGES:
        if page == "docs/performance.md":
            continue
        text = read(page)
        for pattern in (r"\b(January|February|March|April|May|June|July|August|September|"
                        r"October|November|December) \d", r"\bthis machine\b",
                        r"current machine"):
            assert not re.search(pattern, text), f"{page}: {re.search(pattern, text).group()}"
