"""`mrcnf ood`: how well likelihood and complexity scores separate out-of-distribution images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mrcnf_cli.app import app
from mrcnf_cli.commands.common import (
    ConvertOption,
    DataDirOption,
    DeviceOption,
    JsonOption,
    ModelOption,
    QuietOption,
    SeedOption,
    VerboseOption,
    command_errors,
    complete_dataset,
    completer,
    default_device,
    default_model_dir,
    output_console,
    print_json,
    setup_logging,
)
from mrcnf_cli.data import DATASETS
from mrcnf_cli.jobs.ood import METHODS, ood_evaluation
from mrcnf_cli.ood import BUILT_IN_SETS, CODECS
from mrcnf_cli.parsing import resolve_device

POSITIVE_CLASS = "out-of-distribution (AUPR is given for both classes)"
SCORE_DIRECTION = "higher score means out-of-distribution: bpd, S = bpd - L, and each level's share of the bpd"


@app.command()
def ood(
    model: ModelOption = None,
    data: Annotated[Optional[str], typer.Option("--data", help="In-distribution images: a data set name or path. Default: the set the stack was trained on.", autocompletion=complete_dataset)] = None,
    ood_sets: Annotated[Optional[list[str]], typer.Option("--ood", help="Out-of-distribution set (repeatable): constant, noise, a data set name or a path. Default: constant, noise and every named set under --data-dir.", autocompletion=completer([*DATASETS, *BUILT_IN_SETS]))] = None,
    method: Annotated[str, typer.Option("--method", help="Scores to report: S (input complexity), bpd, or all. Level scores are always reported.", autocompletion=completer(METHODS))] = "all",
    compressor: Annotated[str, typer.Option("--compressor", help="Lossless codec for the complexity L(x): jxl, png, j2k or flif (needs the flif program).", autocompletion=completer(CODECS))] = "jxl",
    split: Annotated[str, typer.Option("--split", help="Split of the in-distribution set.")] = "test",
    data_dir: DataDirOption = None,
    max_images: Annotated[Optional[int], typer.Option("--max-images", min=1, help="Use only the first N images of each set (the report says so).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 64,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write histograms of -bpd and S per set to this PNG file.")] = None,
    convert: ConvertOption = False,
    seed: SeedOption = 0,
    device: DeviceOption = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Report auROC, AUPR and FPR at 95% TPR of bpd, the complexity score S and each level's share."""
    setup_logging(verbose=verbose, quiet=quiet)
    with command_errors(verbose=verbose):
        report = ood_evaluation(
            Path(model or default_model_dir()),
            data=data,
            ood=ood_sets,
            method=method,
            compressor=compressor,
            data_dir=data_dir,
            split=split,
            max_images=max_images,
            batch_size=batch_size,
            seed=seed,
            convert=convert,
            plot=plot,
            device=resolve_device(device or default_device()),
        )

    sets = []
    for scored in (report.in_distribution, *report.out_of_distribution):
        summary = {"name": scored.name, "images": scored.count, "bpd_mean": float(scored.bpd.mean())}
        if scored.complexity is not None:
            summary["complexity_bpd_mean"] = float(scored.complexity.mean())
            summary["S_mean"] = float((scored.bpd - scored.complexity).mean())
        sets.append(summary)

    if json_output:
        print_json(
            {
                "in_distribution": report.in_distribution.name,
                "positive_class": POSITIVE_CLASS,
                "score_direction": SCORE_DIRECTION,
                "codec": report.codec,
                "subsampled": report.max_images is not None,
                "max_images": report.max_images,
                "sets": sets,
                "results": report.results,
                "plot": report.plot,
            }
        )
        return

    console = output_console()
    table = Table(title=f"in-distribution: {report.in_distribution.name}; {SCORE_DIRECTION}")
    for column in ("OOD set", "score", "auROC", "AUPR in", "AUPR out", "FPR@95%TPR", "N in", "N out"):
        table.add_column(column)
    for row in report.results:
        table.add_row(row["ood"], row["score"], f"{row['auroc']:.3f}", f"{row['aupr_in']:.3f}", f"{row['aupr_out']:.3f}",
                      f"{row['fpr_at_95_tpr']:.3f}", str(row["n_in"]), str(row["n_out"]))
    console.print(table)
    if report.codec:
        console.print(f"complexity codec: {report.codec['settings']}; file headers counted")
    if report.max_images is not None:
        console.print(f"subsampled: the first {report.max_images} images of each set")
