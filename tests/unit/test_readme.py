"""The README as a newcomer follows it: its first commands, every `chaosmesh` command shown."""

import re

import click
import pytest

from chaosmesh_py import packaged
from chaosmesh_py.cli import main
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy/README.md"]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
# Where a shell stops reading a command's own words.
COMMAND_END = re.compile(r"[;|#)`]|\$\(|&&")


def code(text):
    """Every piece of code in a Markdown text: fenced blocks, then inline spans outside them."""
    blocks = FENCE.findall(text)
    return blocks + INLINE.findall(FENCE.sub("", text))


def chaosmesh_commands(text):
    """The words after each `chaosmesh` a piece of code runs (not chaosmesh_py, chaosmesh-local)."""
    for snippet in code(text):
        for start in re.finditer(r"(?<![\w./-])chaosmesh(?=[ \t])", snippet):
            rest = snippet[start.end() :].split("\n", 1)[0]
            yield COMMAND_END.split(rest, 1)[0].split()


def test_the_readme_starts_with_make_run_and_make_test_then_says_to_activate_the_venv():
    readme = (ROOT / "README.md").read_text()
    title, rest = readme.split("\n", 1)
    assert title.startswith("# ")
    first_block = FENCE.search(rest)
    assert rest[: first_block.start()].strip() == "", "the two commands come first"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.M)
    after = rest[first_block.end() :].strip().split("\n\n")[0]
    assert ". .venv/bin/activate" in after, "right after them: how chaosmesh gets on PATH"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_chaosmesh_command_the_docs_show_exists(doc):
    shown = list(chaosmesh_commands(doc.read_text()))
    assert shown or doc.name != "README.md"
    for words in shown:
        command: click.Command = main
        for word in (word.strip("[]") for word in words):
            if word.startswith("-"):
                options = {o for p in command.params for o in [*p.opts, *p.secondary_opts]}
                assert word.split("=")[0] in options | {"--help"}, (words, command.name)
            elif isinstance(command, click.Group):
                assert word in command.commands, f"chaosmesh {' '.join(words)}: no {word!r}"
                command = command.commands[word]


def test_the_local_mesh_gate_in_the_docs_names_the_experiments_the_local_mesh_can_run():
    # It once globbed bookinfo-ratings-*.json, three experiments, one of them for clusters only,
    # and said "both".
    ci = (ROOT / "docs/ci.md").read_text()
    local = ci[ci.index("## Without a cluster: the local mesh") :]
    assert len([words for words in chaosmesh_commands(local) if words[:1] == ["gate"]]) == 1
    found = re.search(r'"\$\(chaosmesh examples --dir\)"/(\S+)', local)
    assert found, "the gate runs the packaged experiments, wherever the package is installed"
    names = re.fullmatch(r"(.*)\{(.*)\}(.*)", found.group(1))
    assert names, "the experiments are named, not globbed"
    shown = {f"{names[1]}{choice}{names[3]}" for choice in names[2].split(",")}
    runs_locally = {
        path.name for path in packaged.experiments() if "chaosk8s" not in path.read_text()
    }
    assert shown == runs_locally
    counted = {2: "Both", 3: "All three", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight", 9: "Nine"}
    counted |= {10: "Ten", 11: "Eleven", 12: "Twelve", 13: "Thirteen", 14: "Fourteen"}
    assert local.split("```")[2].split()[0] == counted[len(shown)]
