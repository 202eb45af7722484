"""Shared core, statistics: every study's claim rows -> the claims table (Holm families, power, verdicts),
the sizing of each claim's N and the verdict macros (package iclgd.core: claims, claim_rows, stats, power).

Names no study: the row files are those the study rule files registered with `contribute(claims=...)`,
read through a function, so the order of includes does not matter."""


rule claims:
    input:
        rows=lambda wildcards: PAPER["claims"],
        code=lib(
            "core.claims",
            "core.claim_rows",
            "core.claims_tex",
            "core.crossed",
            "core.stats",
            "core.power",
            "core.paper",
        ),
    output:
        claims="results/stats/claims.csv",
        sizing="results/stats/sizing.csv",
        macros="results/paper/macros/claims.json",
        table="paper/generated/tab_claims.tex",
        headline="paper/generated/tab_claims_headline.tex",
        references="paper/generated/tab_claim_references.tex",
    log:
        "logs/claims.log",
    benchmark:
        "benchmarks/claims.tsv"
    conda:
        "../../environment.yml"
    params:
        claims=config["claims"],
        sizing={"data": config["data"], "icl": config["icl"], **RUN.blocks},
    script:
        "../scripts/core/claims.py"


contribute(
    macros=["results/paper/macros/claims.json"],
    tables=[
        "paper/generated/tab_claims.tex",
        "paper/generated/tab_claims_headline.tex",
        "paper/generated/tab_claim_references.tex",
    ],
)
