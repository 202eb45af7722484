"""Rule check_paper: check the finished build (main.log, main.aux in paper/build, the PDF) and fail with
every problem listed, or write the page of every float and its first reference."""

import json
import logging
from dataclasses import asdict
from pathlib import Path

from iclgd.core import build_check, logs

logs.to_file(snakemake.log[0])
pdf = Path(snakemake.input.pdf)
build = pdf.parent / "build"
report = build_check.check_build(pdf, build / "main.log", build / "main.aux")
for key, where in sorted(report.floats.items(), key=lambda kv: kv[1]["page"]):
    logging.info("%s on page %d (first reference: page %s)", key, where["page"], where["first_ref"])
if not report.ok:
    raise RuntimeError(f"the paper's build check failed ({len(report.problems)} problems; {build}/main.log):\n  "
                       + "\n  ".join(report.problems))
Path(snakemake.output[0]).write_text(json.dumps(asdict(report), indent=1, sort_keys=True) + "\n")
logging.info("%d pages, %d floats, no problems", report.pages, len(report.floats))
