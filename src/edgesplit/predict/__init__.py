"""Latency predictors and communication models.

Per-layer-type regressions (:mod:`.layer_regression`), the built-in Pre-DNNOff Table 4.2
coefficient sets (:mod:`.coefficients`), Luger's clock-speed and cloud models
(:mod:`.clock`), the profile predictor (:mod:`.profile_predictor`) and the communication
formulas (:mod:`.communication`). Gao et al.'s polynomial conv-delay model (eq. 1–2) lives
in :mod:`.gao`. Everything fitted follows the scikit-learn estimator contract.
"""
