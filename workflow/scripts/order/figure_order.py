"""Rule figure_order: spread across demonstration orderings vs epoch, ICL as a horizontal band."""

import pandas as pd

from iclgd.core import logs
from iclgd.order import report as order_report

logs.to_file(snakemake.log[0])
table = pd.concat([pd.read_csv(p) for p in snakemake.input.tables], ignore_index=True)
order_report.plot_spread(table, snakemake.output.pdf, snakemake.output.png)
