"""The web service around the classifier: accounts and history (`store`), model versions
(`registry`), what the app does (`service`), the accounts CLI (`python -m webapp.users`) and the pages.

`inference/` never imports this package: the picture -> verdict code stands alone.
"""
