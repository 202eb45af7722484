"""Study compare: how ICL and fine-tuning move the output distribution on the same examples -- top-10 overlap,
overlap cosine (Shen et al. 2023), Rec2FTP (Dai et al. 2023), KL from zero-shot -- next to the untrained
control (Deutch et al. 2024) and ICL under a permuted order (package iclgd.compare). Reads study icl's and
study finetune's records on finetune's (model, dataset) pairs -> tables, paper numbers, claim rows.
"""

#: (model, dataset) pairs fine-tuned: the fine-tuned models on every dataset, then the controls on theirs
COMPARED = RUN.pairs["finetune"]


rule compare:
    input:
        icl=[f"results/icl/{m}/{d}.parquet" for m, d in COMPARED],
        permuted=[f"results/icl/{m}/{d}.permuted.parquet" for m, d in COMPARED],
        finetune=[f"results/finetune/{m}/{d}.parquet" for m, d in COMPARED],
        finetune_dev=[f"results/finetune/{m}/{d}.dev.parquet" for m, d in COMPARED],
        code=lib(
            "compare.distributions",
            "core.metrics",
            "compare.report",
            "finetune.report",
            "core.paper",
        ),
    output:
        examples="results/metrics/icl_vs_gd_examples.parquet",
        table="results/metrics/icl_vs_gd_compare.csv",
        macros="results/paper/macros/compare.json",
        tex="paper/generated/tab_compare.tex",
        summary="paper/generated/compare_summary.tex",
        control="results/metrics/icl_vs_gd_control.csv",
        control_tex="paper/generated/tab_control.tex",
    log:
        "logs/compare.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        controls=dict(RUN.control_like),
    script:
        "../scripts/compare/compare.py"


rule compare_claims:
    input:
        examples="results/metrics/icl_vs_gd_examples.parquet",
        code=lib("compare.claims", "compare.report", "core.claim_rows", "core.crossed"),
    output:
        rows="results/claims/compare.pkl",
    log:
        "logs/compare_claims.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        alpha=config["claims"]["alpha"],
        models=list(RUN.studies["finetune"].models),
    script:
        "../scripts/compare/claims.py"


contribute(
    macros=["results/paper/macros/compare.json"],
    tables=[
        "paper/generated/tab_compare.tex",
        "paper/generated/compare_summary.tex",
        "paper/generated/tab_control.tex",
    ],
    claims=["results/claims/compare.pkl"],
)
