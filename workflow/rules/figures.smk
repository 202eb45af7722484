"""Stage 7: figures (PDF for the paper, PNG for the HTML report)."""


rule figure_icl_accuracy:
    input:
        acc="results/metrics/icl_accuracy.csv",
        code=lib("figures"),
    output:
        pdf="figures/icl_accuracy_vs_k.pdf",
        png=report(
            "figures/icl_accuracy_vs_k.png",
            caption="../report/icl_accuracy.rst",
            category="ICL",
        ),
    log:
        "logs/figures/icl_accuracy_vs_k.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_icl_accuracy.py"


rule figure_construction:
    input:
        convergence="results/lsa/convergence.csv",
        sparsity="results/metrics/weight_sparsity_summary.csv",
        code=lib("construction_report", "lsa", "figures"),
    output:
        lsa_pdf="figures/lsa_convergence.pdf",
        lsa_png=report(
            "figures/lsa_convergence.png",
            caption="../report/lsa_convergence.rst",
            category="Construction",
        ),
        sparsity_pdf="figures/weight_sparsity.pdf",
        sparsity_png=report(
            "figures/weight_sparsity.png",
            caption="../report/weight_sparsity.rst",
            category="Construction",
        ),
    log:
        "logs/figures/construction.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_construction.py"


rule figure_label_curves:
    input:
        curves=[p.replace("claims.csv", "curves.parquet") for p in curves_claims()],
        code=lib("curves_report", "figures"),
    output:
        pdf="figures/label_curves.pdf",
        png=report(
            "figures/label_curves.png",
            caption="../report/label_curves.rst",
            category="Label relationships",
        ),
    log:
        "logs/figures/label_curves.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_label_curves.py"


rule figure_kernel:
    input:
        summaries=kernel_summaries(),
        heads=[p.replace("summary.csv", "heads.parquet") for p in kernel_summaries()],
        code=lib("kernel", "kernel_report", "paper"),
    output:
        pdf="figures/kernel_heads.pdf",
        png=report(
            "figures/kernel_heads.png",
            caption="../report/kernel_heads.rst",
            category="Kernel regression",
        ),
    log:
        "logs/figures/kernel_heads.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_kernel.py"


rule figure_dai:
    input:
        layers="results/metrics/dai_layers.csv",
        code=lib("dai_report", "figures"),
    output:
        pdf="figures/dai_layers.pdf",
        png=report(
            "figures/dai_layers.png",
            caption="../report/dai_layers.rst",
            category="ICL vs GD",
        ),
    log:
        "logs/figures/dai_layers.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_dai.py"


rule figure_order:
    input:
        tables=order_tables(),
        code=lib("order_report", "figures"),
    output:
        pdf="figures/order_sensitivity.pdf",
        png=report(
            "figures/order_sensitivity.png",
            caption="../report/order_sensitivity.rst",
            category="ICL vs GD",
        ),
    log:
        "logs/figures/order_sensitivity.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/figure_order.py"
