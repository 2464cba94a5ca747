"""Training extra of hfpie: install with `pip install hfpie[train]`."""
