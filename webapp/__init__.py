"""The web service around the classifier: accounts and history (`store`), model versions
(`registry`), what the app does (`service`), the accounts CLI (`python -m webapp.users`) and the pages.

`inference/` never imports this package: the picture -> verdict code stands alone. This package never
imports `training/`: retraining runs through `retraining/`, evaluation through `evaluation/`
(tests/test_architecture.py).
"""
