"""The hyper-parameter search: above the model (what it trains) and the evaluation (what it measures).

- :mod:`~ccss_pipeline.tuning.search`: the two-objective Optuna search of a monotonicity method's
  space (the objective, the pruning rule, the study loop of one worker);
- :mod:`~ccss_pipeline.tuning.study`: a study's name, its sampler per trial, opening it;
- :mod:`~ccss_pipeline.tuning.workers`: several workers on one study (every access to Optuna's
  private API is there);
- :mod:`~ccss_pipeline.tuning.refinement`: the last trials bisect λ;
- :mod:`~ccss_pipeline.tuning.selection`: which trial the final fits take (a
  :class:`~ccss_pipeline.model.chosen_params.ChosenParams`, a record of the model layer that the
  evaluation reads without importing the search);
- :mod:`~ccss_pipeline.tuning.study_storage`: where the studies live;
- :mod:`~ccss_pipeline.tuning.plots`: the Pareto front and the trials table;
- :mod:`~ccss_pipeline.tuning.comparison` (with :mod:`~ccss_pipeline.tuning.comparison_rows`): every
  monotonicity method tuned, fitted and measured under one protocol.

The models' own single-objective loop (LightGBM, the Lipschitz network) stays with them
(:mod:`ccss_pipeline.model.peer_tuning`): it uses Optuna's public API only.
"""
