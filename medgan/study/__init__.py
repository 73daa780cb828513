"""The study: its points and sweeps, a point's paired evaluation and report, the data card, aggregation.

`grid` (the study's sweeps, batches and schedules), `sweeps` (expanding and
running a config file's points), `point` / `point_report` (a benchmark point's
answer and its report.md and figures), `data_card` (what a synthetic cohort
is, for sharing), `aggregate` (a sweep's points in one table and Figure 1).
"""
