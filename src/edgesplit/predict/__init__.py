"""Latency predictors.

Per-layer-type regressions (:mod:`.layer_regression`), the built-in Pre-DNNOff Table 4.2
coefficient sets (:mod:`.coefficients`), Luger's clock-speed and cloud models
(:mod:`.clock`), the profile predictor (:mod:`.profile_predictor`) and each device's
per-node seconds from its compute spec (:mod:`.device_seconds`). Communication time is the
link's own (:class:`edgesplit.system.link.Link`, Luger eq. 4.3). Gao et al.'s polynomial
conv-delay model (eq. 1–2) lives in :mod:`.gao`. Everything fitted follows the scikit-learn estimator contract.
"""
