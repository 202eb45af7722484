"""Stage 7: figures (PDF for the paper, PNG for the HTML report)."""


rule figure_icl_accuracy:
    input:
        "results/metrics/icl_accuracy.csv",
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
