"""``bindsearch bind PAIRS.csv --modality NAME --out DIR``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bindsearch.bind import BindObserver, BindReport, EpochResult
from bindsearch.bind import bind as bind_api
from bindsearch.bind.pairs import BadRow
from bindsearch.paths import display_path

from .console import err, handles_errors
from .options import JsonOption, SpaceOption
from .render import print_json

_TRAINING = "Training"


@handles_errors
def bind(
    pairs: Annotated[Path, typer.Argument(metavar="PAIRS.csv", show_default=False,
                                          help="A CSV file with the header image,other: one pair per row, paths "
                                               "relative to the file.")],
    modality: Annotated[str, typer.Option("--modality", "-m", metavar="NAME", show_default=False,
                                          help="The modality: a new name (with --input), or audio, depth, thermal "
                                               "or imu to fine-tune the base's tower.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                      help="Folder of the run: its checkpoints, the tower and the space.json it "
                                           "writes.")],
    input: Annotated[str | None, typer.Option("--input", metavar="KIND", show_default=False,
                                              help="What a new modality's files are: timeseries (CSV, .npy, "
                                                   ".npz), image1 (one-channel images) or audio.")] = None,
    space: SpaceOption = None,
    epochs: Annotated[int | None, typer.Option("--epochs", metavar="N", show_default=False,
                                               help="Passes over the pairs (default 10).", rich_help_panel=_TRAINING)
                      ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", metavar="B", show_default=False,
                                                   help="Pairs per batch (default: as many as memory allows, up to "
                                                        "1024).", rich_help_panel=_TRAINING)] = None,
    lr: Annotated[float | None, typer.Option("--lr", metavar="LR", show_default=False,
                                             help="Peak learning rate (default 5e-4 for a new tower, 2e-5 to "
                                                  "fine-tune).", rich_help_panel=_TRAINING)] = None,
    holdout: Annotated[float | None, typer.Option("--holdout", metavar="SHARE", show_default=False,
                                                  help="Share of the pairs kept out of training to measure recall "
                                                       "(default 0.1).", rich_help_panel=_TRAINING)] = None,
    seed: Annotated[int | None, typer.Option("--seed", metavar="S", show_default=False,
                                             help="Seed of the split, the initial weights and the batches "
                                                  "(default 0).", rich_help_panel=_TRAINING)] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", metavar="T", show_default=False,
                                                      help="A fixed InfoNCE temperature (default: learned, from "
                                                           "0.07).", rich_help_panel=_TRAINING)] = None,
    tower_size: Annotated[str | None, typer.Option("--tower-size", metavar="SIZE", show_default=False,
                                                   help="A new tower's size: base (ImageBind's), small or tiny.",
                                                   rich_help_panel=_TRAINING)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in DIR from its last "
                                                          "finished epoch.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Teach a space a new modality (or a better tower for one it has) from pairs with images.

    Example: bindsearch bind pairs.csv --modality vibration --input timeseries --out bound/

    The new tower learns to land where the space's frozen image tower puts each pair's
    image (symmetric InfoNCE); text, sound and every other modality then find it through
    the images. Use the space it writes with --space DIR/space.json.
    """
    with _RichBindProgress() as progress:
        report = bind_api(pairs, modality, out, input=input, space=space, epochs=epochs, batch_size=batch_size,
                          lr=lr, holdout=holdout, seed=seed, temperature=temperature, size=tower_size,
                          resume=resume, observer=progress)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)


def _print_report(report: BindReport) -> None:
    lines = [f"bound {report.modality} on {report.pairs} pairs in {report.seconds:.1f} s "
             f"({report.epochs} epochs, batch {report.batch_size}, {report.precision})"]
    if report.heldout:
        for k in (1, 5, 10):
            to, back = report.recall_to_image.get(k), report.recall_from_image.get(k)
            lines.append(f"  held-out recall@{k}: {report.modality}->image {to:.3f}, image->{report.modality} "
                         f"{back:.3f} (chance {report.chance[k]:.3f})")
    else:
        lines.append("  no pairs held out (--holdout 0): recall not measured")
    if report.skipped:
        lines.append(f"  {len(report.skipped)} pairs left out (see above)")
    lines.append(f"space: {display_path(report.space)}  (use it with --space {display_path(report.space)})")
    print("\n".join(lines))


class _RichBindProgress(BindObserver):
    """One bar per phase (images embedded, files read, training steps) with loss, speed and recall."""

    def __init__(self) -> None:
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=err,
                              transient=True, disable=not err.is_terminal)
        self._task = None
        self._last_recall = ""

    def __enter__(self) -> _RichBindProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def phase(self, name: str, total: int) -> None:
        if self._task is not None:
            self._bars.remove_task(self._task)
        self._task = self._bars.add_task(name, total=total or None, info="")
        self._training = name == "training"

    def advance(self, done: int, total: int) -> None:
        if self._task is not None:
            self._bars.update(self._task, completed=done, total=total or None)

    def step(self, step: int, total: int, loss: float, pairs_per_s: float) -> None:
        if self._task is not None:
            self._bars.update(self._task, description="training steps", completed=step, total=total,
                              info=f"loss {loss:.3f}  {pairs_per_s:.0f} pairs/s{self._last_recall}")

    def epoch(self, result: EpochResult) -> None:
        if result.recall_to_image:
            self._last_recall = f"  held-out R@1 {result.recall_to_image[1]:.2f}"
        line = f"epoch {result.epoch}: loss {result.loss:.4f}"
        if result.recall_to_image:
            line += (f", held-out recall@1 {result.recall_to_image[1]:.3f} (->image) "
                     f"{result.recall_from_image[1]:.3f} (image->), @10 {result.recall_to_image[10]:.3f}")
        err.print(line, highlight=False, markup=False)

    def bad_row(self, bad: BadRow) -> None:
        err.print(f"  [yellow]skipped[/] row {bad.row}: {display_path(bad.path)}: {bad.reason}", markup=True,
                  highlight=False)

