"""Studies: every experiment end to end, composed above the figures and the report.

A study runs the experiment machinery of `lesde.experiments` (the pipeline of stages),
then draws the figures (`lesde.figures`) and writes the report (`lesde.report`,
`lesde.report_paper`). This is the floor that composes them: nothing below imports it.

- `runner`: `run_single` (one run), `run_points` (one run per value of a parameter),
  `run_separation` (the theorem experiments and the collapse demo);
- one module per experiment (`geomnist`, `label_noise`, `sample_size`, `cifar`,
  `digits`), each with a frozen ``Config`` and ``run(cfg, out)``; `registry` names them;
- `analyse`: the chain on any record (`lesde analyse`); `paper`: every experiment of the
  paper and one report (`lesde run paper`).
"""
