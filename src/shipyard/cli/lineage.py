"""``shipyard lineage``: where anything in a model's life came from and what came of it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text
from rich.tree import Tree

from shipyard.cli._base import console, print_json, workspace_from
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.automation.lineage import LineageGraph, Node

__all__ = ["lineage"]

_KIND_STYLE = {
    "dataset": "green",
    "run": "cyan",
    "model": "bold magenta",
    "deployment": "bold blue",
    "alert": "red",
    "pipeline": "cyan",
    "trigger": "yellow",
}


def lineage(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="What to trace: NAME@V (model version, else dataset version), a deployment "
            "name, a run/pipeline run/trigger/alert event id, or KIND:ID (dataset:, run:, "
            "model:, deployment:, alert:, pipeline:, trigger:)."
        ),
    ],
    depth: Annotated[int, typer.Option("--depth", "-d", min=0, help="Hops to walk each way.")] = 4,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="tree, or mermaid (a flowchart for docs).")
    ] = "tree",
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON.")] = False,
) -> None:
    """Walk the lineage graph both ways from REF: data, runs, model versions, deployments,
    alerts, trigger events and pipeline runs, each with its id and state."""
    from shipyard.automation.lineage import walk

    if fmt not in ("tree", "mermaid"):
        raise InvalidArgumentError(f"--format is tree or mermaid, not {fmt!r}")
    graph = walk(workspace_from(ctx).backend, ref, depth=depth)
    if as_json:
        print_json(graph.to_dict())
        return
    if fmt == "mermaid":
        sys.stdout.write(graph.to_mermaid())
        return
    console.print(_line(graph.root))
    for title, upwards in (("upstream", True), ("downstream", False)):
        tree = Tree(Text(title, style="bold"), guide_style="dim")
        _grow(graph, tree, graph.root.key, upwards, _placement(graph, upwards))
        if not tree.children:
            tree.add(Text("nothing recorded", style="dim"))
        console.print(tree)


def _line(node: Node, relation: str = "") -> Text:
    text = Text()
    text.append(node.kind, style=_KIND_STYLE.get(node.kind, ""))
    text.append(f" {node.label}")
    if relation:
        text.append(f"  ({relation})", style="dim")
    return text


def _placement(graph: LineageGraph, upwards: bool) -> dict[str, str]:
    """Where each node goes in the tree: under the first node that reaches it breadth-first,
    so it sits at its shortest distance from the root."""
    placed: dict[str, str] = {}
    frontier = [graph.root.key]
    while frontier:
        following = []
        for key in frontier:
            for node in graph.parents(key) if upwards else graph.children(key):
                if node.key != graph.root.key and node.key not in placed:
                    placed[node.key] = key
                    following.append(node.key)
        frontier = following
    return placed


def _grow(graph: LineageGraph, tree: Tree, key: str, upwards: bool, placed: dict[str, str]) -> None:
    """Add ``key``'s parents (or children) under ``tree``; one placed elsewhere in the tree is
    only named (with ↺)."""
    nearby = graph.parents(key) if upwards else graph.children(key)
    for node in nearby:
        relation = graph.relation(node.key, key) if upwards else graph.relation(key, node.key)
        if placed.get(node.key) != key:
            short = node.label.split(" · ")[0]
            tree.add(Text(f"↺ {node.kind} {short}  ({relation})", style="dim"))
            continue
        branch = tree.add(_line(node, relation))
        _grow(graph, branch, node.key, upwards, placed)
