"""Training (optional extra ``[train]``): never imported at run time."""
