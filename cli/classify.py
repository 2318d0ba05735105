"""``bindsearch classify FILE... --labels "dog,car,bird"`` (zero-shot) or ``--examples DIR`` (few-shot)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

import bindsearch
from bindsearch.classify import parse_labels, read_labels_file
from bindsearch.errors import LibraryError, UsageError
from bindsearch.fewshot import METHODS, read_examples
from bindsearch.modality import Modality
from bindsearch.paths import display_path

from .console import EXIT_FAILED_FILES, err, handles_errors
from .options import JsonOption, LibraryOption, SpaceOption
from .remote import NoServerOption, running_server
from .render import print_classifications, print_json


@handles_errors
def classify(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Files to label, of any modality.")],
    labels: Annotated[
        str | None, typer.Option("--labels", "-l", metavar="LABELS", help='Labels separated by commas: "dog,car,bird".')
    ] = None,
    labels_file: Annotated[
        Path | None, typer.Option("--labels-file", metavar="FILE", help="A file of labels, one per line.")
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option("--examples", metavar="DIR", show_default=False,
                     help="Few-shot: a folder with one sub-folder of example files per label (the sub-folder's "
                          "name is the label)."),
    ] = None,
    probe: Annotated[
        str | None,
        typer.Option("--probe", metavar="prototype|logistic", show_default=False,
                     help="With --examples: label by the closest mean of each label's examples (prototype, the "
                          "default) or by a logistic-regression probe fitted on them (logistic)."),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option("--template", metavar="MODALITY=TEMPLATE", show_default=False,
                     help='Prompt of a modality, {} standing for the label: audio="a recording of a {}" '
                          "(repeatable; default: 'a photo of a {}.', 'the sound of a {}.', ...)."),
    ] = None,
    modality: Annotated[
        str | None,
        typer.Option("--modality", "-m", metavar="MODALITY", help="Treat every file as this modality."),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", "-k", metavar="N", min=1,
                                            help="Show the N most probable labels per file (default: all).")] = None,
    space: SpaceOption = None,
    library: LibraryOption = None,
    as_json: JsonOption = False,
    no_server: NoServerOption = False,
) -> None:
    """Zero-shot (or with --examples, few-shot) labels: the probability of each label for each file, in the
    library's space (or --space).

    Example: bindsearch classify recordings/*.wav --labels "dog,car,bird,rain"

    Probabilities are a softmax over the cosine similarities between the file
    and each label's prompt, times the space's logit scale. With --examples DIR
    the labels are learned from a few example files per label instead (few-shot).
    """
    if sum(given is not None for given in (labels, labels_file, examples)) != 1:
        raise UsageError("give the labels with one of --labels, --labels-file and --examples")
    if examples is not None:
        results = _few_shot(files, examples, probe, template, modality, space, library)
    else:
        if probe is not None:
            raise UsageError("--probe goes with --examples DIR")
        results = _zero_shot(files, labels, labels_file, template, modality, space, library, no_server)
    if as_json:
        print_json(results)
    else:
        print_classifications(results, top)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        err.print(f"  [red]failed[/] {display_path(r.path)}: {r.error}", markup=True, highlight=False)
    if failed:
        raise typer.Exit(EXIT_FAILED_FILES)


def _zero_shot(files: list[Path], labels: str | None, labels_file: Path | None, template: list[str] | None,
               modality: str | None, space: str | None, library: Path | None,
               no_server: bool) -> list[bindsearch.Classification]:
    if labels_file is not None:
        label_list = read_labels_file(labels_file)
    else:
        assert labels is not None
        label_list = parse_labels(labels)
    templates = parse_templates(template or [])
    results = None if space is not None or templates else _remote_results(library, no_server, files, label_list,
                                                                            modality)
    if results is None:
        chosen = bindsearch.load_space(space) if space is not None else _library_space(library)
        results = bindsearch.classify(files, label_list, space=chosen, modality=modality, templates=templates)
    return results


def _few_shot(files: list[Path], examples: Path, probe: str | None, template: list[str] | None,
              modality: str | None, space: str | None, library: Path | None) -> list[bindsearch.Classification]:
    """Labels learned from the examples, always in this process: a server has no examples folder to read."""
    if template:
        raise UsageError("--template goes with --labels or --labels-file (examples need no prompts)")
    method = probe or "prototype"
    if method not in METHODS:
        raise UsageError(f"--probe takes one of {', '.join(METHODS)} (got {probe!r})")
    read_examples(examples)  # a bad folder is said before a model loads
    chosen = bindsearch.load_space(space) if space is not None else _library_space(library)
    return bindsearch.classify_examples(files, examples, space=chosen, modality=modality, method=method)


def parse_templates(values: list[str]) -> dict[Modality, str]:
    """``["audio=the sound of {}"]`` -> {AUDIO: "the sound of {}"}."""
    out = {}
    for value in values:
        name, equals, template = value.partition("=")
        if not equals:
            raise UsageError(f"--template takes MODALITY=TEMPLATE, got {value!r}")
        out[Modality.parse(name)] = template
    return out


def _library_space(library: Path | None) -> bindsearch.Space:
    """The library's space when there is a library, else the default space."""
    try:
        with bindsearch.open_library(library) as lib:
            return lib.space
    except LibraryError:
        return bindsearch.load_space(None)


def _remote_results(library: Path | None, no_server: bool, files: list[Path], labels: list[str],
                    modality: str | None) -> list[bindsearch.Classification] | None:
    """The labels from the library's running server; None when there is none, or when a file is one the
    server cannot be sent (missing, unreadable, of no modality its name tells): in process, each such file
    gets its own reason while the others are labelled."""
    from bindsearch.modality import modality_from_path

    forced = Modality.parse(modality) if modality is not None else None
    inputs = [(forced or modality_from_path(str(f)), f) for f in files]
    if any(kind is None or not f.is_file() or not os.access(f, os.R_OK) for kind, f in inputs):
        return None
    server = running_server(library, no_server)
    if server is None:
        return None
    from bindsearch.server.client import ServerGone

    try:
        return server.classify(inputs, labels)  # type: ignore[arg-type]
    except ServerGone:
        return None
