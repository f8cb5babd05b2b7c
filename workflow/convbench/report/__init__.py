"""The report stage (workflow/rules/report.smk): summary.csv from every experiment's files, and the
helpers the report notebook calls, one module per section (tables, curves, galleries, networks,
statistics, variants, tradeoffs, provenance), executed and rendered to results/report.html by build."""
